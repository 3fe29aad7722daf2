"""The contract's mutation inputs and payloads (the Mutation root is in schema/schema.py).

Every payload carries `userErrors`: a problem with the input comes back there, with one of
the codes NOT_FOUND, INVALID, INVALID_STATE, FORBIDDEN, BUDGET_EXCEEDED or DUPLICATE, and
nothing changes. A role that may not call a mutation at all gets a FORBIDDEN error instead.
"""

from __future__ import annotations

import strawberry

from domain.llm_calls import LlmCallFigures
from schema import types as t
from schema.scalars import Date, DateTime, Decimal


@strawberry.type
class UserError:
    field: list[str] = strawberry.field(
        description=(
            'The input field at fault, as a path, e.g. ["input", "budgetCapUsd"]; empty when '
            "no single field is."
        )
    )
    message: str
    code: str = strawberry.field(
        description=(
            "One of NOT_FOUND, INVALID, INVALID_STATE, FORBIDDEN, BUDGET_EXCEEDED, DUPLICATE."
        )
    )


@strawberry.input
class CreateCampaignInput:
    name: str
    goal: str | None = None
    budget_cap_usd: Decimal | None = None
    starts_on: Date | None = None
    ends_on: Date | None = None


@strawberry.input
class UpdateCampaignInput:
    # UNSET: leave as is; None: clear (where the field may be empty).
    name: str | None = strawberry.UNSET
    goal: str | None = strawberry.UNSET
    budget_cap_usd: Decimal | None = strawberry.UNSET
    starts_on: Date | None = strawberry.UNSET
    ends_on: Date | None = strawberry.UNSET
    status: t.CampaignStatus | None = strawberry.UNSET


@strawberry.input
class CreateDeliverableInput:
    campaign_id: strawberry.ID
    title: str
    kind: t.DeliverableKind
    due_at: DateTime | None = None


@strawberry.input
class DispatchActivityInput:
    deliverable_id: strawberry.ID
    role: t.AgentRole
    priority: int | None = 5
    instructions: str | None = None


@strawberry.input
class ResolveApprovalInput:
    approval_id: strawberry.ID
    decision: t.ApprovalDecision
    comment: str | None = None


@strawberry.input
class ActivityProgressInput:
    activity_id: strawberry.ID
    chunk: str | None = strawberry.field(
        default=None,
        description=(
            "Text the agent produced since its last report, appended to the activity's "
            "output and streamed to subscribers."
        ),
    )
    status: t.ActivityStatus | None = None
    failure_reason: str | None = None


@strawberry.input
class RecordLlmCallInput(LlmCallFigures):
    """The figures of domain.llm_calls.LlmCallFigures, for one of the agent's activities."""

    activity_id: strawberry.ID


@strawberry.input
class CreateSkillInput:
    name: str
    summary: str = strawberry.field(description="One line, shown in agents' skill manifests.")
    content: str = strawberry.field(description="Markdown instructions for an agent.")
    role: t.AgentRole | None = strawberry.field(
        default=None, description="The role that uses it; none: every role."
    )


@strawberry.input
class UpdateSkillInput:
    # UNSET: leave as is; role None: for every role.
    name: str | None = strawberry.UNSET
    summary: str | None = strawberry.UNSET
    content: str | None = strawberry.UNSET
    role: t.AgentRole | None = strawberry.UNSET


@strawberry.type
class CampaignPayload:
    campaign: t.Campaign | None
    user_errors: list[UserError]


@strawberry.type
class DeliverablePayload:
    deliverable: t.Deliverable | None
    user_errors: list[UserError]


@strawberry.type
class ActivityPayload:
    activity: t.Activity | None
    user_errors: list[UserError]


@strawberry.type
class ApprovalPayload:
    approval: t.Approval | None
    user_errors: list[UserError]


@strawberry.type
class AgentPayload:
    agent: t.Agent | None
    user_errors: list[UserError]


@strawberry.type
class PreferencePayload:
    preference: t.Preference | None
    user_errors: list[UserError]


@strawberry.type
class LlmCallPayload:
    llm_call: t.LlmCall | None
    user_errors: list[UserError]


@strawberry.type
class SkillPayload:
    skill: t.Skill | None
    user_errors: list[UserError]
