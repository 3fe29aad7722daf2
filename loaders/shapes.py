"""SQL rows into the schema's object types: the column list of each table and its mapper.

Every mapper reads columns by position order of its `*_COLUMNS` list, so a query that
selects `CAMPAIGN_COLUMNS` can hand its rows to `campaign_from_row` unchanged.

The mappers of the types a page reads by the hundred fill the new object's `__dict__` with
every field at once instead of calling the dataclass `__init__` with keyword arguments:
about 0.6 us less per object, some 800 objects in a DashboardOverview. They must name
every field of their type (the differential and contract tests read them all).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain.ids import to_global_id

# The write side owns the lists its RETURNING clauses share with these mappers.
from domain.store.tables import ACTIVITY_COLUMNS as ACTIVITY_COLUMNS
from domain.store.tables import AGENT_COLUMNS as AGENT_COLUMNS
from domain.store.tables import APPROVAL_COLUMNS as APPROVAL_COLUMNS
from domain.store.tables import CAMPAIGN_COLUMNS as CAMPAIGN_COLUMNS
from domain.store.tables import DELIVERABLE_COLUMNS as DELIVERABLE_COLUMNS
from schema import types as t

_new = object.__new__

TENANT_COLUMNS = "t.id, t.name, t.slug, t.created_at, t.monthly_spend_cap_usd"
LLM_CALL_COLUMNS = (
    "t.id, t.activity_id, t.provider, t.model, t.input_tokens, t.output_tokens, t.cost_usd, "
    "t.latency_ms, t.created_at"
)
SKILL_COLUMNS = "t.id, t.name, t.role, t.content, t.summary"


def tenant_from_row(r: Any) -> t.Tenant:
    return t.Tenant(
        id=to_global_id("Tenant", r[0]),
        row_id=r[0],
        name=r[1],
        slug=r[2],
        created_at=r[3],
        monthly_spend_cap_usd=r[4],
    )


def campaign_from_row(r: Any) -> t.Campaign:
    cap: Decimal | None = r[5]
    campaign = _new(t.Campaign)
    campaign.__dict__ = {
        "id": to_global_id("Campaign", r[0]),
        "row_id": r[0],
        "tenant_id": r[1],
        "name": r[2],
        "goal": r[3],
        "status": r[4],
        "budget_cap_usd": cap,
        "starts_on": r[6],
        "ends_on": r[7],
        "created_at": r[8],
        "updated_at": r[9],
        "budget_used_fraction": float(r[10] / cap) if cap else None,
    }
    return campaign


def deliverable_from_row(r: Any) -> t.Deliverable:
    deliverable = _new(t.Deliverable)
    deliverable.__dict__ = {
        "id": to_global_id("Deliverable", r[0]),
        "row_id": r[0],
        "campaign_id": r[1],
        "title": r[2],
        "kind": r[3],
        "status": r[4],
        "due_at": r[5],
        "created_at": r[6],
        "cost_usd": r[7],
    }
    return deliverable


def activity_from_row(r: Any) -> t.Activity:
    activity = _new(t.Activity)
    activity.__dict__ = {
        "id": to_global_id("Activity", r[0]),
        "row_id": r[0],
        "deliverable_id": r[1],
        "agent_id": r[2],
        "status": r[3],
        "wake_reason": r[4],
        "priority": r[5],
        "instructions": r[6],
        "output": r[7],
        "failure_reason": r[8],
        "created_at": r[9],
        "dispatched_at": r[10],
        "first_token_at": r[11],
        "completed_at": r[12],
        "cost_usd": r[13],
    }
    return activity


def approval_from_row(r: Any) -> t.Approval:
    approval = _new(t.Approval)
    approval.__dict__ = {
        "id": to_global_id("Approval", r[0]),
        "row_id": r[0],
        "activity_id": r[1],
        "status": r[2],
        "risk_level": r[3],
        "requested_at": r[4],
        "expires_at": r[5],
        "resolved_at": r[6],
        "comment": r[7],
        "resolved_by_id": r[8],
    }
    return approval


def agent_from_row(r: Any) -> t.Agent:
    return t.Agent(
        id=to_global_id("Agent", r[0]),
        row_id=r[0],
        role=r[1],
        status=r[2],
        model=r[3],
        concurrency=r[4],
        max_cost_usd_per_activity=r[5],
        max_turns_per_run=r[6],
    )


def llm_call_from_row(r: Any) -> t.LlmCall:
    return t.LlmCall(
        id=to_global_id("LlmCall", r[0]),
        activity_id=r[1],
        provider=r[2],
        model=r[3],
        input_tokens=r[4],
        output_tokens=r[5],
        cost_usd=r[6],
        latency_ms=r[7],
        created_at=r[8],
    )


def skill_from_row(r: Any) -> t.Skill:
    return t.Skill(id=to_global_id("Skill", r[0]), name=r[1], role=r[2], content=r[3], summary=r[4])


def skill_from_record(r: Any) -> t.Skill:
    """A Skill from anything with its fields as attributes: a search hit (the index's
    payload carries every field, so a search reads no row) or a domain.skills.SkillRow."""
    return t.Skill(
        id=to_global_id("Skill", r.id),
        name=r.name,
        role=r.role,
        content=r.content,
        summary=r.summary,
    )
