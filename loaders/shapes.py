"""SQL rows into the schema's object types: the columns of each table and its mapper.

Every mapper reads each column by its name (`r["status"]`), from anything that answers
`row[name]`: an asyncpg record (`Database.fetch` of an SQL string) or SQLAlchemy's
`RowMapping` (the store's rows). A query that selects a table's `*_COLUMNS` (made from its
`*_FIELDS`, in any order, with other columns around them) can hand its rows to the mapper
unchanged.

The types a page reads by the hundred (campaigns, deliverables, activities, approvals) have
a `TableShape`: their key columns (ids, foreign keys, sort columns: what resolvers, access
rules and cursors read) are always selected, and each plain column (one that fills the
attribute of its own name and nothing else) only when the operation reads that attribute.
A planned operation says what it reads (`Loaders.reads`), so a dashboard neither fetches
nor decodes the activities' outputs it does not show; a missing attribute raises
AttributeError, never answers null. Their mappers fill the new object's `__dict__` at once
instead of calling the dataclass `__init__` with keyword arguments: about 0.6 us less per
object, some 800 objects in a DashboardOverview.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Projection:
    """The columns one request's reads select of a table, and the mapper of such rows."""

    fields: tuple[str, ...]
    plain: tuple[str, ...]  # the plain columns among `fields`
    mapper: Callable[[Any, tuple[str, ...]], Any] = field(repr=False)
    columns: str = field(init=False)  # the select list of `fields` over alias `t`

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", select_list(self.fields))

    def build(self, row: Any) -> Any:
        return self.mapper(row, self.plain)


def plain_of(fields: tuple[str, ...], keys: tuple[str, ...]) -> tuple[str, ...]:
    """A table's plain columns: all but its keys, each filling the attribute of its name."""
    return tuple(f for f in fields if f not in keys)


@dataclass(frozen=True)
class TableShape:
    """One table on the read side: its name, its columns (`fields`, the store's), its key columns
    (always selected; the mapper reads them itself), and its mapper `mapper(row, plain
    columns)`. Every other column is plain: selected only when read."""

    type_name: str  # the GraphQL type its rows become
    table: str
    fields: tuple[str, ...]
    keys: tuple[str, ...]
    mapper: Callable[[Any, tuple[str, ...]], Any] = field(repr=False)
    plain: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        missing = set(self.keys) - set(self.fields)
        if missing:
            raise ValueError(f"{self.type_name}: its keys {sorted(missing)} are not fields")
        object.__setattr__(self, "plain", plain_of(self.fields, self.keys))

    @functools.lru_cache(maxsize=64)  # noqa: B019 (module-level shapes, a handful of reads)
    def projection(self, reads: frozenset[str] | None) -> Projection:
        """The columns to select when the operation reads the attributes `reads` of this
        type (None: every column, for an operation that is not planned)."""
        plain = self.plain if reads is None else tuple(f for f in self.plain if f in reads)
        chosen = tuple(f for f in self.fields if f not in self.plain or f in plain)
        return Projection(chosen, plain, self.mapper)


CAMPAIGN_KEYS = ("id", "tenant_id", "budget_cap_usd", "created_at", "spent_usd")
CAMPAIGN_PLAIN = plain_of(CAMPAIGN_FIELDS, CAMPAIGN_KEYS)


def campaign_from_row(r: Any, plain: tuple[str, ...] = CAMPAIGN_PLAIN) -> t.Campaign:
    cap: Decimal | None = r["budget_cap_usd"]
    row_id = r["id"]
    values = {
        "id": to_global_id("Campaign", row_id),
        "row_id": row_id,
        "tenant_id": r["tenant_id"],
        "budget_cap_usd": cap,
        "created_at": r["created_at"],
        "budget_used_fraction": float(r["spent_usd"] / cap) if cap else None,
    }
    for column in plain:
        values[column] = r[column]
    campaign = _new(t.Campaign)
    campaign.__dict__ = values
    return campaign


DELIVERABLE_KEYS = ("id", "campaign_id", "created_at")
DELIVERABLE_PLAIN = plain_of(DELIVERABLE_FIELDS, DELIVERABLE_KEYS)


def deliverable_from_row(r: Any, plain: tuple[str, ...] = DELIVERABLE_PLAIN) -> t.Deliverable:
    row_id = r["id"]
    values = {
        "id": to_global_id("Deliverable", row_id),
        "row_id": row_id,
        "campaign_id": r["campaign_id"],
        "created_at": r["created_at"],
    }
    for column in plain:
        values[column] = r[column]
    deliverable = _new(t.Deliverable)
    deliverable.__dict__ = values
    return deliverable


ACTIVITY_KEYS = ("id", "deliverable_id", "agent_id", "created_at")
ACTIVITY_PLAIN = plain_of(ACTIVITY_FIELDS, ACTIVITY_KEYS)


def activity_from_row(r: Any, plain: tuple[str, ...] = ACTIVITY_PLAIN) -> t.Activity:
    row_id = r["id"]
    values = {
        "id": to_global_id("Activity", row_id),
        "row_id": row_id,
        "deliverable_id": r["deliverable_id"],
        "agent_id": r["agent_id"],
        "created_at": r["created_at"],
    }
    for column in plain:
        values[column] = r[column]
    activity = _new(t.Activity)
    activity.__dict__ = values
    return activity


APPROVAL_KEYS = ("id", "activity_id", "expires_at", "resolved_by")
APPROVAL_PLAIN = plain_of(APPROVAL_FIELDS, APPROVAL_KEYS)


def approval_from_row(r: Any, plain: tuple[str, ...] = APPROVAL_PLAIN) -> t.Approval:
    row_id = r["id"]
    values = {
        "id": to_global_id("Approval", row_id),
        "row_id": row_id,
        "activity_id": r["activity_id"],
        "expires_at": r["expires_at"],
        "resolved_by_id": r["resolved_by"],
    }
    for column in plain:
        values[column] = r[column]
    approval = _new(t.Approval)
    approval.__dict__ = values
    return approval


CAMPAIGN = TableShape("Campaign", "campaigns", CAMPAIGN_FIELDS, CAMPAIGN_KEYS, campaign_from_row)
DELIVERABLE = TableShape(
    "Deliverable", "deliverables", DELIVERABLE_FIELDS, DELIVERABLE_KEYS, deliverable_from_row
)
ACTIVITY = TableShape("Activity", "activities", ACTIVITY_FIELDS, ACTIVITY_KEYS, activity_from_row)
APPROVAL = TableShape("Approval", "approvals", APPROVAL_FIELDS, APPROVAL_KEYS, approval_from_row)


def agent_from_row(r: Any, plain: tuple[str, ...] = ()) -> t.Agent:
    """Every column: a tenant has a handful of agents (`AGENT` has no plain columns)."""
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


def llm_call_from_row(r: Any, plain: tuple[str, ...] = ()) -> t.LlmCall:
    """Every column: its figures are one domain dataclass (`LLM_CALL` has no plain columns)."""
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


AGENT = TableShape("Agent", "agents", AGENT_FIELDS, AGENT_FIELDS, agent_from_row)
LLM_CALL = TableShape("LlmCall", "llm_calls", LLM_CALL_FIELDS, LLM_CALL_FIELDS, llm_call_from_row)


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
