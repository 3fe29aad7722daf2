"""SQL rows into the schema's object types: the columns of each table and its mapper.

Every mapper reads each column by its name (`r["status"]`), from anything that answers
`row[name]`: an asyncpg record (`Database.fetch` of an SQL string) or SQLAlchemy's
`RowMapping` (the store's rows). A query that selects a table's `*_COLUMNS` (made from its
`*_FIELDS`, in any order, with other columns around them) can hand its rows to the mapper
unchanged.

The mappers of the types a page reads by the hundred fill the new object's `__dict__` with
every field at once instead of calling the dataclass `__init__` with keyword arguments:
about 0.6 us less per object, some 800 objects in a DashboardOverview. They must name
every field of their type (the differential and contract tests read them all).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain.ids import to_global_id

# The write side owns the columns its RETURNING clauses share with these mappers.
from domain.store.tables import ACTIVITY_COLUMNS as ACTIVITY_COLUMNS
from domain.store.tables import ACTIVITY_FIELDS as ACTIVITY_FIELDS
from domain.store.tables import AGENT_COLUMNS as AGENT_COLUMNS
from domain.store.tables import AGENT_FIELDS as AGENT_FIELDS
from domain.store.tables import APPROVAL_COLUMNS as APPROVAL_COLUMNS
from domain.store.tables import APPROVAL_FIELDS as APPROVAL_FIELDS
from domain.store.tables import CAMPAIGN_COLUMNS as CAMPAIGN_COLUMNS
from domain.store.tables import CAMPAIGN_FIELDS as CAMPAIGN_FIELDS
from domain.store.tables import DELIVERABLE_COLUMNS as DELIVERABLE_COLUMNS
from domain.store.tables import DELIVERABLE_FIELDS as DELIVERABLE_FIELDS
from domain.store.tables import select_list
from schema import types as t

_new = object.__new__

TENANT_FIELDS = ("id", "name", "slug", "created_at", "monthly_spend_cap_usd")
LLM_CALL_FIELDS = (
    "id",
    "activity_id",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "created_at",
)
SKILL_FIELDS = ("id", "name", "role", "content", "summary")

TENANT_COLUMNS = select_list(TENANT_FIELDS)
LLM_CALL_COLUMNS = select_list(LLM_CALL_FIELDS)
SKILL_COLUMNS = select_list(SKILL_FIELDS)


def prefixed(fields: tuple[str, ...], prefix: str) -> tuple[tuple[str, str], ...]:
    """(field, column) pairs for a table's `fields` selected as `prefix` + field, beside
    another table's columns in the same row."""
    return tuple((field, prefix + field) for field in fields)


def unprefixed(row: Any, pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The columns `pairs` (from `prefixed`) of `row` under their own names, for a mapper."""
    return {field: row[column] for field, column in pairs}


def tenant_from_row(r: Any) -> t.Tenant:
    return t.Tenant(
        id=to_global_id("Tenant", r["id"]),
        row_id=r["id"],
        name=r["name"],
        slug=r["slug"],
        created_at=r["created_at"],
        monthly_spend_cap_usd=r["monthly_spend_cap_usd"],
    )


def campaign_from_row(r: Any) -> t.Campaign:
    cap: Decimal | None = r["budget_cap_usd"]
    row_id = r["id"]
    campaign = _new(t.Campaign)
    campaign.__dict__ = {
        "id": to_global_id("Campaign", row_id),
        "row_id": row_id,
        "tenant_id": r["tenant_id"],
        "name": r["name"],
        "goal": r["goal"],
        "status": r["status"],
        "budget_cap_usd": cap,
        "starts_on": r["starts_on"],
        "ends_on": r["ends_on"],
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
        "budget_used_fraction": float(r["spent_usd"] / cap) if cap else None,
    }
    return campaign


def deliverable_from_row(r: Any) -> t.Deliverable:
    row_id = r["id"]
    deliverable = _new(t.Deliverable)
    deliverable.__dict__ = {
        "id": to_global_id("Deliverable", row_id),
        "row_id": row_id,
        "campaign_id": r["campaign_id"],
        "title": r["title"],
        "kind": r["kind"],
        "status": r["status"],
        "due_at": r["due_at"],
        "created_at": r["created_at"],
        "cost_usd": r["cost_usd"],
    }
    return deliverable


def activity_from_row(r: Any) -> t.Activity:
    row_id = r["id"]
    activity = _new(t.Activity)
    activity.__dict__ = {
        "id": to_global_id("Activity", row_id),
        "row_id": row_id,
        "deliverable_id": r["deliverable_id"],
        "agent_id": r["agent_id"],
        "status": r["status"],
        "wake_reason": r["wake_reason"],
        "priority": r["priority"],
        "instructions": r["instructions"],
        "output": r["output"],
        "failure_reason": r["failure_reason"],
        "created_at": r["created_at"],
        "dispatched_at": r["dispatched_at"],
        "first_token_at": r["first_token_at"],
        "completed_at": r["completed_at"],
        "cost_usd": r["cost_usd"],
    }
    return activity


def approval_from_row(r: Any) -> t.Approval:
    row_id = r["id"]
    approval = _new(t.Approval)
    approval.__dict__ = {
        "id": to_global_id("Approval", row_id),
        "row_id": row_id,
        "activity_id": r["activity_id"],
        "status": r["status"],
        "risk_level": r["risk_level"],
        "requested_at": r["requested_at"],
        "expires_at": r["expires_at"],
        "resolved_at": r["resolved_at"],
        "comment": r["comment"],
        "resolved_by_id": r["resolved_by"],
    }
    return approval


def agent_from_row(r: Any) -> t.Agent:
    return t.Agent(
        id=to_global_id("Agent", r["id"]),
        row_id=r["id"],
        role=r["role"],
        status=r["status"],
        model=r["model"],
        concurrency=r["concurrency"],
        max_cost_usd_per_activity=r["max_cost_usd_per_activity"],
        max_turns_per_run=r["max_turns_per_run"],
    )


def llm_call_from_row(r: Any) -> t.LlmCall:
    return t.LlmCall(
        id=to_global_id("LlmCall", r["id"]),
        activity_id=r["activity_id"],
        provider=r["provider"],
        model=r["model"],
        input_tokens=r["input_tokens"],
        output_tokens=r["output_tokens"],
        cost_usd=r["cost_usd"],
        latency_ms=r["latency_ms"],
        created_at=r["created_at"],
    )


def skill_from_row(r: Any) -> t.Skill:
    return t.Skill(
        id=to_global_id("Skill", r["id"]),
        name=r["name"],
        role=r["role"],
        content=r["content"],
        summary=r["summary"],
    )


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
