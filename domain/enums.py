"""The platform's enumerations, as stored in the database and shown by the API."""

from enum import StrEnum


class MemberRole(StrEnum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MARKETER = "MARKETER"
    VIEWER = "VIEWER"


class CampaignStatus(StrEnum):
    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    ARCHIVED = "ARCHIVED"


class DeliverableKind(StrEnum):
    BLOG_POST = "BLOG_POST"
    SOCIAL_POST = "SOCIAL_POST"
    AD_SET = "AD_SET"
    SEO_AUDIT = "SEO_AUDIT"
    EMAIL = "EMAIL"
    REPORT = "REPORT"


class DeliverableStatus(StrEnum):
    PLANNED = "PLANNED"
    IN_PROGRESS = "IN_PROGRESS"
    IN_REVIEW = "IN_REVIEW"
    APPROVED = "APPROVED"
    PUBLISHED = "PUBLISHED"
    CANCELLED = "CANCELLED"


class ActivityStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    REVISING = "REVISING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    ESCALATED = "ESCALATED"
    CANCELLED = "CANCELLED"


class WakeReason(StrEnum):
    CAMPAIGN_SUBMITTED = "CAMPAIGN_SUBMITTED"
    SCHEDULED = "SCHEDULED"
    MANUAL = "MANUAL"
    APPROVAL_GRANTED = "APPROVAL_GRANTED"
    REVISION_REQUESTED = "REVISION_REQUESTED"
    RETRY = "RETRY"
    ESCALATION = "ESCALATION"


class ApprovalStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    REVISION_REQUESTED = "REVISION_REQUESTED"
    EXPIRED = "EXPIRED"


class ApprovalDecision(StrEnum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"
    REQUEST_REVISION = "REQUEST_REVISION"


class RiskLevel(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class AgentRole(StrEnum):
    ACTIVITY_PLANNER = "ACTIVITY_PLANNER"
    COPYWRITER = "COPYWRITER"
    SEO_SPECIALIST = "SEO_SPECIALIST"
    SOCIAL_MEDIA_MANAGER = "SOCIAL_MEDIA_MANAGER"
    PAID_ADS_MANAGER = "PAID_ADS_MANAGER"
    DATA_ANALYST = "DATA_ANALYST"
    CONTENT_RESEARCHER = "CONTENT_RESEARCHER"


# `Tenant.agents` lists one agent per role in this order (the order of the enum).
AGENT_ROLE_ORDER = {role.value: index for index, role in enumerate(AgentRole)}


class AgentStatus(StrEnum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    ERROR = "ERROR"
    TERMINATED = "TERMINATED"


class SpendDimension(StrEnum):
    AGENT = "AGENT"
    MODEL = "MODEL"
    CAMPAIGN = "CAMPAIGN"
    DAY = "DAY"


class TenantEventType(StrEnum):
    APPROVAL_CREATED = "APPROVAL_CREATED"
    APPROVAL_RESOLVED = "APPROVAL_RESOLVED"
    ACTIVITY_STATUS_CHANGED = "ACTIVITY_STATUS_CHANGED"
    AGENT_STATUS_CHANGED = "AGENT_STATUS_CHANGED"
    CAMPAIGN_UPDATED = "CAMPAIGN_UPDATED"
    SPEND_UPDATED = "SPEND_UPDATED"
    ESCALATION_CREATED = "ESCALATION_CREATED"


class ActivityStreamEventKind(StrEnum):
    TOKEN = "TOKEN"
    STATUS = "STATUS"
