"""The contract's object types.

Scalar fields are plain attributes, filled by the loaders straight from SQL rows, so
graphql-core reads them without calling a resolver. Each relation or aggregate is a thin
synchronous resolver that hands back a per-request DataLoader's future: the loaders batch
every parent of a level into one statement, and a sync resolver costs far less than an
async one. Those declared with `@relation(loader)` (schema/relations.py) return only the
key, after their access checks: the planned executor loads a whole level's keys in one call.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

import strawberry
from strawberry import Private

from domain import enums
from domain.access import require_member, require_member_or_self
from domain.errors import Forbidden
from domain.llm_calls import LlmCallFigures
from domain.pagination import page_args
from domain.spend import month_window
from schema.relations import relation
from schema.scalars import JSON, BigInt, Date, DateTime, Decimal

if TYPE_CHECKING:
    from resolvers.context import RequestContext

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
    @relation("tenant")
    def tenant(self, info: Info) -> Any:
        return self.tenant_id


@strawberry.type
class Viewer:
    id: strawberry.ID
    email: str
    display_name: str
    role: MemberRole
    tenant_id: Private[uuid.UUID]
    user_id: Private[uuid.UUID | None]  # None for an agent

    @strawberry.field(graphql_type=Annotated["Tenant", strawberry.lazy("schema.types")])
    @relation("tenant")
    def tenant(self, info: Info) -> Any:
        return self.tenant_id

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
    @relation("campaigns_of_tenant")
    def campaigns(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        status: CampaignStatus | None = None,
    ) -> Any:
        require_member(info.context.principal)
        page = page_args(first, after)
        return (self.row_id, page, status)

    @strawberry.field(graphql_type=list["Agent"])
    @relation("agents_of_tenant")
    def agents(self, info: Info) -> Any:
        require_member(info.context.principal)
        return self.row_id

    @strawberry.field(graphql_type=int)
    @relation("pending_approval_count_of_tenant")
    def pending_approval_count(self, info: Info) -> Any:
        require_member(info.context.principal)
        return self.row_id

    @strawberry.field(
        graphql_type=SpendSummary, description="Spend of LLM calls made in [from, to)."
    )
    @relation("spend")
    def spend(
        self,
        info: Info,
        from_: Annotated[DateTime, strawberry.argument(name="from")],
        to: DateTime,
    ) -> Any:
        require_member(info.context.principal)
        return ("TENANT", "", from_, to)

    @strawberry.field(
        graphql_type=list[SpendBucket],
        description=(
            "Spend in [from, to) split by one dimension, largest total first "
            "(DAY: oldest first, UTC days)."
        ),
    )
    @relation("spend_report")
    def spend_report(
        self,
        info: Info,
        from_: Annotated[DateTime, strawberry.argument(name="from")],
        to: DateTime,
        group_by: SpendDimension,
    ) -> Any:
        require_member(info.context.principal)
        return (group_by, from_, to)


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
    @relation("tenant")
    def tenant(self, info: Info) -> Any:
        return self.tenant_id

    @strawberry.field(graphql_type=Connection["Deliverable"])
    @relation("deliverables_of_campaign")
    def deliverables(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        status: DeliverableStatus | None = None,
    ) -> Any:
        require_member(info.context.principal)
        page = page_args(first, after)
        return (self.row_id, page, status)

    @strawberry.field(graphql_type=Connection["Approval"])
    @relation("pending_approvals_of_campaign")
    def pending_approvals(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Any:
        require_member(info.context.principal)
        page = page_args(first, after)
        return (self.row_id, page, None)

    @strawberry.field(graphql_type=int)
    @relation("pending_approval_count_of_campaign")
    def pending_approval_count(self, info: Info) -> Any:
        require_member(info.context.principal)
        return self.row_id

    @strawberry.field(graphql_type=SpendSummary)
    @relation("spend")
    def spend(
        self,
        info: Info,
        from_: Annotated[DateTime, strawberry.argument(name="from")],
        to: DateTime,
    ) -> Any:
        require_member(info.context.principal)
        return ("CAMPAIGN", str(self.row_id), from_, to)


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
    @relation("campaign")
    def campaign(self, info: Info) -> Any:
        return self.campaign_id

    @strawberry.field(graphql_type=Connection["Activity"])
    @relation("activities_of_deliverable")
    def activities(self, info: Info, first: int | None = 20, after: str | None = None) -> Any:
        require_member(info.context.principal)
        page = page_args(first, after)
        return (self.row_id, page, None)

    @strawberry.field(graphql_type=Annotated["Activity", strawberry.lazy("schema.types")] | None)
    @relation("latest_activity_of_deliverable")
    def latest_activity(self, info: Info) -> Any:
        require_member(info.context.principal)
        return self.row_id


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
    @relation("activities_of_agent")
    def activities(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        status: ActivityStatus | None = None,
    ) -> Any:
        require_member_or_self(info.context.principal, self.row_id)
        page = page_args(first, after)
        return (self.row_id, page, status)

    @strawberry.field(graphql_type=SpendSummary)
    @relation("spend")
    def spend(
        self,
        info: Info,
        from_: Annotated[DateTime, strawberry.argument(name="from")],
        to: DateTime,
    ) -> Any:
        require_member_or_self(info.context.principal, self.row_id)
        return ("AGENT", str(self.row_id), from_, to)


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
    @relation("deliverable")
    def deliverable(self, info: Info) -> Any:
        return self.deliverable_id

    @strawberry.field(graphql_type=Agent)
    @relation("agent")
    def agent(self, info: Info) -> Any:
        return self.agent_id

    @strawberry.field(graphql_type=Annotated["Approval", strawberry.lazy("schema.types")] | None)
    @relation("approval_of_activity")
    def approval(self, info: Info) -> Any:
        return self.row_id

    @strawberry.field(graphql_type=Connection["LlmCall"])
    @relation("llm_calls_of_activity")
    def llm_calls(self, info: Info, first: int | None = 20, after: str | None = None) -> Any:
        page = page_args(first, after)
        return (self.row_id, page, None)


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
    @relation("activity")
    def activity(self, info: Info) -> Any:
        return self.activity_id

    @strawberry.field(graphql_type=Viewer | None)
    @relation("member")
    def resolved_by(self, info: Info) -> Any:
        return self.resolved_by_id


@strawberry.type
class LlmCall(Node, LlmCallFigures):
    """A recorded call: the figures of domain.llm_calls.LlmCallFigures, and when."""

    id: strawberry.ID
    created_at: DateTime
    activity_id: Private[uuid.UUID]

    @strawberry.field(graphql_type=Activity)
    @relation("activity")
    def activity(self, info: Info) -> Any:
        return self.activity_id


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
    @relation("urgent_approvals")
    def urgent_approvals(self, info: Info) -> Any:
        return self.tenant_id

    @strawberry.field(
        graphql_type=list[Activity], description="The 10 most recently created activities."
    )
    @relation("recent_activities")
    def recent_activities(self, info: Info) -> Any:
        return self.tenant_id


# Live events.


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
    @relation("approval")
    def approval(self, info: Info) -> Any:
        return self.approval_id

    @strawberry.field(graphql_type=Activity | None)
    @relation("activity")
    def activity(self, info: Info) -> Any:
        return self.activity_id

    @strawberry.field(graphql_type=Agent | None)
    @relation("agent")
    def agent(self, info: Info) -> Any:
        return self.agent_id

    @strawberry.field(graphql_type=Campaign | None)
    @relation("campaign")
    def campaign(self, info: Info) -> Any:
        return self.campaign_id

    @strawberry.field(
        graphql_type=SpendSummary | None,
        description="Month-to-date spend of the tenant, on SPEND_UPDATED.",
    )
    @relation("spend")
    def spend(self, info: Info) -> Any:
        if self.type != enums.TenantEventType.SPEND_UPDATED:
            return None
        month = month_window(dt.datetime.now(dt.UTC))
        return ("TENANT", "", month.start, month.end)


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
