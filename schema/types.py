"""The contract's object types.

Scalar fields are plain attributes, filled by the loaders straight from SQL rows, so
graphql-core reads them without calling a resolver. Each relation or aggregate is a thin
synchronous resolver that hands back a per-request DataLoader's future: the loaders batch
every parent of a level into one statement, and a sync resolver costs far less than an
async one (see ../shared/notes/performance-facts.md).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated, Generic, TypeVar

import strawberry
from strawberry import Private

from domain import enums
from domain.access import require_member, require_member_or_self
from domain.errors import Forbidden
from domain.pagination import page_args
from domain.spend import month_window
from schema.scalars import JSON, BigInt, Date, DateTime, Decimal

if TYPE_CHECKING:
    from switchboard.context import RequestContext

    Info = strawberry.Info[RequestContext, None]
else:
    Info = strawberry.Info

MemberRole = strawberry.enum(enums.MemberRole)
CampaignStatus = strawberry.enum(enums.CampaignStatus)
DeliverableKind = strawberry.enum(enums.DeliverableKind)
DeliverableStatus = strawberry.enum(enums.DeliverableStatus)
ActivityStatus = strawberry.enum(enums.ActivityStatus)
WakeReason = strawberry.enum(enums.WakeReason)
ApprovalStatus = strawberry.enum(enums.ApprovalStatus)
ApprovalDecision = strawberry.enum(enums.ApprovalDecision)
RiskLevel = strawberry.enum(enums.RiskLevel)
AgentRole = strawberry.enum(enums.AgentRole)
AgentStatus = strawberry.enum(enums.AgentStatus)
SpendDimension = strawberry.enum(enums.SpendDimension)
TenantEventType = strawberry.enum(enums.TenantEventType)
ActivityStreamEventKind = strawberry.enum(enums.ActivityStreamEventKind)

T = TypeVar("T")


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo


@strawberry.type
class SpendSummary:
    total_usd: Decimal
    input_tokens: BigInt
    output_tokens: BigInt
    call_count: int


@strawberry.type
class SpendBucket:
    key: str = strawberry.field(
        description="The agent's, model's or campaign's ID or name, or the day as YYYY-MM-DD."
    )
    label: str
    total_usd: Decimal
    input_tokens: BigInt
    output_tokens: BigInt
    call_count: int


@strawberry.type
class Preference:
    key: str
    value: JSON
    updated_at: DateTime


@strawberry.type
class Membership:
    role: MemberRole
    tenant_id: Private[uuid.UUID]

    @strawberry.field(graphql_type=Annotated["Tenant", strawberry.lazy("schema.types")])
    def tenant(self, info: Info) -> Awaitable[Tenant]:
        return info.context.loaders.tenant.load(self.tenant_id)


@strawberry.type
class Viewer:
    id: strawberry.ID
    email: str
    display_name: str
    role: MemberRole
    tenant_id: Private[uuid.UUID]
    user_id: Private[uuid.UUID | None]  # None for an agent

    @strawberry.field(graphql_type=Annotated["Tenant", strawberry.lazy("schema.types")])
    def tenant(self, info: Info) -> Awaitable[Tenant]:
        return info.context.loaders.tenant.load(self.tenant_id)

    @strawberry.field
    def memberships(self) -> list[Membership]:
        # Only the token's tenant: a token never sees another tenant, even one its user is in.
        return [Membership(role=self.role, tenant_id=self.tenant_id)]

    @strawberry.field(graphql_type=list[Preference])
    def preferences(self, info: Info) -> Awaitable[list[Preference]] | list[Preference]:
        if self.user_id != info.context.principal.subject_id:
            raise Forbidden("Only a viewer's own preferences can be read.")
        if self.user_id is None:
            return []
        return info.context.loaders.preferences_of_user.load(self.user_id)


@strawberry.type
class Tenant(Node):
    id: strawberry.ID
    name: str
    slug: str
    created_at: DateTime
    monthly_spend_cap_usd: Decimal | None
    row_id: Private[uuid.UUID]

    @strawberry.field(graphql_type=Connection["Campaign"])
    def campaigns(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        status: CampaignStatus | None = None,
    ) -> Awaitable[Connection[Campaign]]:
        require_member(info.context.principal)
        page = page_args(first, after)
        return info.context.loaders.campaigns_of_tenant.load((self.row_id, page, status))

    @strawberry.field(graphql_type=list["Agent"])
    def agents(self, info: Info) -> Awaitable[list[Agent]]:
        require_member(info.context.principal)
        return info.context.loaders.agents_of_tenant.load(self.row_id)

    @strawberry.field(graphql_type=int)
    def pending_approval_count(self, info: Info) -> Awaitable[int]:
        require_member(info.context.principal)
        return info.context.loaders.pending_approval_count_of_tenant.load(self.row_id)

    @strawberry.field(
        graphql_type=SpendSummary, description="Spend of LLM calls made in [from, to)."
    )
    def spend(
        self,
        info: Info,
        from_: Annotated[DateTime, strawberry.argument(name="from")],
        to: DateTime,
    ) -> Awaitable[SpendSummary]:
        require_member(info.context.principal)
        return info.context.loaders.spend.load(("TENANT", "", from_, to))

    @strawberry.field(
        graphql_type=list[SpendBucket],
        description=(
            "Spend in [from, to) split by one dimension, largest total first "
            "(DAY: oldest first, UTC days)."
        ),
    )
    def spend_report(
        self,
        info: Info,
        from_: Annotated[DateTime, strawberry.argument(name="from")],
        to: DateTime,
        group_by: SpendDimension,
    ) -> Awaitable[list[SpendBucket]]:
        require_member(info.context.principal)
        return info.context.loaders.spend_report.load((group_by, from_, to))


@strawberry.type
class Campaign(Node):
    id: strawberry.ID
    name: str
    goal: str | None
    status: CampaignStatus
    budget_cap_usd: Decimal | None
    starts_on: Date | None
    ends_on: Date | None
    created_at: DateTime
    updated_at: DateTime
    budget_used_fraction: float | None = strawberry.field(
        description="All-time spend divided by budgetCapUsd; null without a cap."
    )
    row_id: Private[uuid.UUID]
    tenant_id: Private[uuid.UUID]

    @strawberry.field(graphql_type=Tenant)
    def tenant(self, info: Info) -> Awaitable[Tenant]:
        return info.context.loaders.tenant.load(self.tenant_id)

    @strawberry.field(graphql_type=Connection["Deliverable"])
    def deliverables(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        status: DeliverableStatus | None = None,
    ) -> Awaitable[Connection[Deliverable]]:
        require_member(info.context.principal)
        page = page_args(first, after)
        return info.context.loaders.deliverables_of_campaign.load((self.row_id, page, status))

    @strawberry.field(graphql_type=Connection["Approval"])
    def pending_approvals(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Awaitable[Connection[Approval]]:
        require_member(info.context.principal)
        page = page_args(first, after)
        return info.context.loaders.pending_approvals_of_campaign.load((self.row_id, page, None))

    @strawberry.field(graphql_type=int)
    def pending_approval_count(self, info: Info) -> Awaitable[int]:
        require_member(info.context.principal)
        return info.context.loaders.pending_approval_count_of_campaign.load(self.row_id)

    @strawberry.field(graphql_type=SpendSummary)
    def spend(
        self,
        info: Info,
        from_: Annotated[DateTime, strawberry.argument(name="from")],
        to: DateTime,
    ) -> Awaitable[SpendSummary]:
        require_member(info.context.principal)
        return info.context.loaders.spend.load(("CAMPAIGN", str(self.row_id), from_, to))


@strawberry.type
class Deliverable(Node):
    id: strawberry.ID
    title: str
    kind: DeliverableKind
    status: DeliverableStatus
    due_at: DateTime | None
    created_at: DateTime
    cost_usd: Decimal = strawberry.field(
        description="All-time spend of the LLM calls of its activities."
    )
    row_id: Private[uuid.UUID]
    campaign_id: Private[uuid.UUID]

    @strawberry.field(graphql_type=Campaign)
    def campaign(self, info: Info) -> Awaitable[Campaign]:
        return info.context.loaders.campaign.load(self.campaign_id)

    @strawberry.field(graphql_type=Connection["Activity"])
    def activities(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Awaitable[Connection[Activity]]:
        require_member(info.context.principal)
        page = page_args(first, after)
        return info.context.loaders.activities_of_deliverable.load((self.row_id, page, None))

    @strawberry.field(graphql_type=Annotated["Activity", strawberry.lazy("schema.types")] | None)
    def latest_activity(self, info: Info) -> Awaitable[Activity | None]:
        require_member(info.context.principal)
        return info.context.loaders.latest_activity_of_deliverable.load(self.row_id)


@strawberry.type
class Agent(Node):
    id: strawberry.ID
    role: AgentRole
    status: AgentStatus
    model: str
    concurrency: int = strawberry.field(description="How many of its activities may run at once.")
    max_cost_usd_per_activity: Decimal | None
    max_turns_per_run: int
    row_id: Private[uuid.UUID]

    @strawberry.field(graphql_type=Connection["Activity"])
    def activities(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        status: ActivityStatus | None = None,
    ) -> Awaitable[Connection[Activity]]:
        require_member_or_self(info.context.principal, self.row_id)
        page = page_args(first, after)
        return info.context.loaders.activities_of_agent.load((self.row_id, page, status))

    @strawberry.field(graphql_type=SpendSummary)
    def spend(
        self,
        info: Info,
        from_: Annotated[DateTime, strawberry.argument(name="from")],
        to: DateTime,
    ) -> Awaitable[SpendSummary]:
        require_member_or_self(info.context.principal, self.row_id)
        return info.context.loaders.spend.load(("AGENT", str(self.row_id), from_, to))


@strawberry.type
class Activity(Node):
    id: strawberry.ID
    status: ActivityStatus
    wake_reason: WakeReason
    priority: int = strawberry.field(description="1 is the most urgent, 10 the least.")
    instructions: str | None
    output: str | None
    failure_reason: str | None
    created_at: DateTime
    dispatched_at: DateTime | None
    first_token_at: DateTime | None
    completed_at: DateTime | None
    cost_usd: Decimal
    row_id: Private[uuid.UUID]
    deliverable_id: Private[uuid.UUID]
    agent_id: Private[uuid.UUID]

    @strawberry.field(graphql_type=Deliverable)
    def deliverable(self, info: Info) -> Awaitable[Deliverable]:
        return info.context.loaders.deliverable.load(self.deliverable_id)

    @strawberry.field(graphql_type=Agent)
    def agent(self, info: Info) -> Awaitable[Agent]:
        return info.context.loaders.agent.load(self.agent_id)

    @strawberry.field(graphql_type=Annotated["Approval", strawberry.lazy("schema.types")] | None)
    def approval(self, info: Info) -> Awaitable[Approval | None]:
        return info.context.loaders.approval_of_activity.load(self.row_id)

    @strawberry.field(graphql_type=Connection["LlmCall"])
    def llm_calls(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Awaitable[Connection[LlmCall]]:
        page = page_args(first, after)
        return info.context.loaders.llm_calls_of_activity.load((self.row_id, page, None))


@strawberry.type
class Approval(Node):
    id: strawberry.ID
    status: ApprovalStatus
    risk_level: RiskLevel
    requested_at: DateTime
    expires_at: DateTime
    resolved_at: DateTime | None
    comment: str | None
    row_id: Private[uuid.UUID]
    activity_id: Private[uuid.UUID]
    resolved_by_id: Private[uuid.UUID | None]

    @strawberry.field(graphql_type=Activity)
    def activity(self, info: Info) -> Awaitable[Activity]:
        return info.context.loaders.activity.load(self.activity_id)

    @strawberry.field(graphql_type=Viewer | None)
    def resolved_by(self, info: Info) -> Awaitable[Viewer | None] | None:
        if self.resolved_by_id is None:
            return None
        return info.context.loaders.member.load(self.resolved_by_id)


@strawberry.type
class LlmCall(Node):
    id: strawberry.ID
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms: int
    created_at: DateTime
    activity_id: Private[uuid.UUID]

    @strawberry.field(graphql_type=Activity)
    def activity(self, info: Info) -> Awaitable[Activity]:
        return info.context.loaders.activity.load(self.activity_id)


@strawberry.type
class Skill(Node):
    id: strawberry.ID
    name: str
    role: AgentRole | None
    content: str
    summary: str = strawberry.field(
        description="One line: what an agent's manifest shows of the skill before it loads it."
    )


@strawberry.type
class SkillMatch:
    skill: Skill
    score: float


@strawberry.type
class MobileHome:
    pending_approval_count: int
    active_campaign_count: int
    running_activity_count: int
    spend_this_month_usd: Decimal
    monthly_spend_cap_usd: Decimal | None
    tenant_id: Private[uuid.UUID]

    @strawberry.field(
        graphql_type=list[Approval],
        description="Up to 5 pending HIGH-risk approvals, soonest expiry first.",
    )
    def urgent_approvals(self, info: Info) -> Awaitable[list[Approval]]:
        return info.context.loaders.urgent_approvals.load(self.tenant_id)

    @strawberry.field(
        graphql_type=list[Activity], description="The 10 most recently created activities."
    )
    def recent_activities(self, info: Info) -> Awaitable[list[Activity]]:
        return info.context.loaders.recent_activities.load(self.tenant_id)


# ------------------------------------------------------------ live events


@strawberry.type
class TenantEvent:
    """One event of the tenant's log. Its objects resolve when it is delivered, through
    loaders made for that delivery, so they are as of that moment."""

    id: str = strawberry.field(
        description="Position in the tenant's event log; pass it as `after` to resume."
    )
    type: TenantEventType
    occurred_at: DateTime
    approval_id: Private[uuid.UUID | None]
    activity_id: Private[uuid.UUID | None]
    agent_id: Private[uuid.UUID | None]
    campaign_id: Private[uuid.UUID | None]

    @strawberry.field(graphql_type=Approval | None)
    def approval(self, info: Info) -> Awaitable[Approval | None] | None:
        if self.approval_id is None:
            return None
        return info.context.loaders.approval.load(self.approval_id)

    @strawberry.field(graphql_type=Activity | None)
    def activity(self, info: Info) -> Awaitable[Activity | None] | None:
        if self.activity_id is None:
            return None
        return info.context.loaders.activity.load(self.activity_id)

    @strawberry.field(graphql_type=Agent | None)
    def agent(self, info: Info) -> Awaitable[Agent | None] | None:
        if self.agent_id is None:
            return None
        return info.context.loaders.agent.load(self.agent_id)

    @strawberry.field(graphql_type=Campaign | None)
    def campaign(self, info: Info) -> Awaitable[Campaign | None] | None:
        if self.campaign_id is None:
            return None
        return info.context.loaders.campaign.load(self.campaign_id)

    @strawberry.field(
        graphql_type=SpendSummary | None,
        description="Month-to-date spend of the tenant, on SPEND_UPDATED.",
    )
    def spend(self, info: Info) -> Awaitable[SpendSummary] | None:
        if self.type != enums.TenantEventType.SPEND_UPDATED:
            return None
        month = month_window(dt.datetime.now(dt.UTC))
        return info.context.loaders.spend.load(("TENANT", "", month.start, month.end))


@strawberry.type
class ActivityStreamEvent:
    id: str = strawberry.field(
        description="Position in the activity's stream; pass it as `after` to resume."
    )
    activity_id: strawberry.ID
    kind: ActivityStreamEventKind
    text: str | None
    status: ActivityStatus | None
    occurred_at: DateTime
