"""Skills: markdown instructions for agents, and the rules around them.

A skill belongs to one tenant, or is global (`tenant_id` NULL) and then visible to every
tenant; a tenant sees its own skills and the global ones, never another tenant's. A skill
has a name (unique within its tenant, case-insensitively; the global skills form one
namespace of their own), an optional role, a one-line summary and its content.

What this module owns:
- validation of a skill's fields, and `create_skill` / `update_skill`, each inside the
  caller's one transaction;
- two-stage loading for agent runs: `manifest` (names and one-line summaries of the skills
  a role may use: the role's own and the role-less ones) goes into a run's first prompt;
  `load_for_run` fetches one skill's content when the run asks for it by name (the tenant's
  own skill first, then a global one of that name);
- `rows_for_index`: what the search index (switchboard/skill_search/) is built from.

Nothing here knows of GraphQL, HTTP, Redis or the index: callers tell the index about a
change after their commit (`switchboard.skill_search.skills_changed`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.enums import AgentRole
from domain.errors import BadUserInput, Rejected

MAX_NAME = 100
MAX_SUMMARY = 160
MAX_CONTENT = 20_000  # characters of markdown; a skill is read whole into an agent's prompt
ROLES = frozenset(role.value for role in AgentRole)
MAX_QUERY = 1000  # characters of a skillSearch query
MAX_RESULTS = 50  # skillSearch's largest `first`
# How many skills one run may load: a runtime asking for more is told no (prompt size).
MAX_LOADED_PER_RUN = 3

COLUMNS = "s.id, s.tenant_id, s.name, s.role, s.summary, s.content, s.updated_at"


@dataclass(frozen=True, slots=True)
class SkillRow:
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    name: str
    role: str | None
    summary: str
    content: str
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    name: str
    summary: str


def _row(r: Any) -> SkillRow:
    return SkillRow(*r)


def _has_control(value: str, allow_newlines: bool) -> bool:
    allowed = "\n\t\r" if allow_newlines else ""
    return any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in value)


def clean_fields(fields: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """The validated fields (trimmed); a field with a problem raises Rejected naming it.
    `partial`: an update, where absent fields stay as they are."""
    out: dict[str, Any] = {}
    for key in ("name", "summary", "content"):
        if key not in fields:
            if not partial:
                raise Rejected("INVALID", f"`{key}` is required.", "input", key)
            continue
        value = fields[key]
        if not isinstance(value, str):
            raise Rejected("INVALID", f"`{key}` may not be null.", "input", key)
        value = value.strip()
        limit = {"name": MAX_NAME, "summary": MAX_SUMMARY, "content": MAX_CONTENT}[key]
        if not 1 <= len(value) <= limit:
            raise Rejected("INVALID", f"`{key}` holds 1 to {limit} characters.", "input", key)
        if _has_control(value, allow_newlines=key == "content"):
            what = "control characters" if key == "content" else "line breaks or control characters"
            raise Rejected("INVALID", f"`{key}` may not hold {what}.", "input", key)
        out[key] = value
    if "role" in fields:
        role = fields["role"]
        if role is not None and str(role) not in ROLES:
            raise Rejected("INVALID", "Not an agent role.", "input", "role")
        out["role"] = None if role is None else str(role)
    return out


_INSERT = text(
    f"""INSERT INTO skills AS s (id, tenant_id, name, role, summary, content)
        VALUES (:id, :tenant_id, :name, :role, :summary, :content)
        RETURNING {COLUMNS}"""
)


async def create_skill(
    conn: AsyncConnection, tenant_id: uuid.UUID | None, fields: Mapping[str, Any]
) -> SkillRow:
    """A new skill of the tenant (None: a global one)."""
    values = clean_fields(fields, partial=False)
    values.setdefault("role", None)
    params = {"id": uuid.uuid4(), "tenant_id": tenant_id, **values}
    return _row(await _unique_name(conn, _INSERT, params))


async def update_skill(
    conn: AsyncConnection,
    tenant_id: uuid.UUID | None,
    skill_id: uuid.UUID,
    fields: Mapping[str, Any],
) -> SkillRow:
    """Change a skill of the tenant (None: a global one). Another tenant's skill is
    NOT_FOUND; a global skill seen from a tenant is FORBIDDEN (it is shared by all)."""
    changes = clean_fields(fields, partial=True)
    owner = (
        await conn.execute(
            text("SELECT tenant_id FROM skills WHERE id = :id FOR UPDATE"), {"id": skill_id}
        )
    ).first()
    if owner is None or (owner[0] is not None and owner[0] != tenant_id):
        raise Rejected("NOT_FOUND", "No skill has this ID.", "id")
    if owner[0] != tenant_id:
        raise Rejected("FORBIDDEN", "Global skills are shared by every tenant.", "id")
    assignments = ", ".join(f"{column} = :{column}" for column in changes)
    statement = text(
        f"UPDATE skills AS s SET {assignments}{', ' if changes else ''}updated_at = now() "
        f"WHERE s.id = :id RETURNING {COLUMNS}"
    )
    return _row(await _unique_name(conn, statement, {"id": skill_id, **changes}))


async def _unique_name(conn: AsyncConnection, statement: Any, params: dict[str, Any]) -> Any:
    # The unique index (migration 0006) decides, so two concurrent writes cannot both win;
    # the error aborts the caller's transaction, which Rejected rolls back anyway.
    try:
        return (await conn.execute(statement, params)).one()
    except exc.IntegrityError as error:
        if "skills_name_per_tenant" not in str(error.orig):
            raise
        raise Rejected("DUPLICATE", "A skill of this name exists.", "input", "name") from None


def search_terms(query: str, first: int | None) -> tuple[str, int]:
    """A skillSearch's query (whitespace collapsed) and `first`, or BadUserInput saying
    what is wrong with them."""
    if len(query) > MAX_QUERY:
        raise BadUserInput(f"`query` holds at most {MAX_QUERY} characters ({len(query)} given).")
    if _has_control(query, allow_newlines=True):
        raise BadUserInput("`query` may not hold control characters.")
    normalized = " ".join(query.split())
    if not normalized:
        raise BadUserInput("`query` must hold at least one character that is not a space.")
    first = 5 if first is None else first
    if not 1 <= first <= MAX_RESULTS:
        raise BadUserInput(f"`first` must be between 1 and {MAX_RESULTS} ({first} given).")
    return normalized, first


# ---------------------------------------------------------------- two-stage loading

_VISIBLE = "(s.tenant_id = :tenant_id OR s.tenant_id IS NULL)"
_FOR_ROLE = "(s.role = :role OR s.role IS NULL)"

_MANIFEST = text(
    f"""SELECT DISTINCT ON (lower(s.name)) s.name, s.summary
        FROM skills s WHERE {_VISIBLE} AND {_FOR_ROLE}
        ORDER BY lower(s.name), s.tenant_id NULLS LAST"""
)

_LOAD = text(
    f"""SELECT {COLUMNS} FROM skills s
        WHERE {_VISIBLE} AND {_FOR_ROLE} AND lower(s.name) = lower(:name)
        ORDER BY s.tenant_id NULLS LAST LIMIT 1"""
)


async def manifest(conn: AsyncConnection, tenant_id: uuid.UUID, role: str) -> list[ManifestEntry]:
    """Names and one-line summaries of the skills a run of `role` may load, by name; a
    tenant's skill hides a global one of the same name."""
    rows = (await conn.execute(_MANIFEST, {"tenant_id": tenant_id, "role": role})).all()
    return [ManifestEntry(name=r[0], summary=r[1]) for r in rows]


async def load_for_run(
    conn: AsyncConnection, tenant_id: uuid.UUID, role: str, name: str
) -> SkillRow | None:
    """The skill a run asked for by name (case-insensitive), if its role may use it."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        return None
    row = (await conn.execute(_LOAD, {"tenant_id": tenant_id, "role": role, "name": name})).first()
    return None if row is None else _row(row)


# ---------------------------------------------------------------- the search index's source


async def rows_for_index(
    conn: AsyncConnection, ids: Sequence[uuid.UUID] | None = None
) -> list[SkillRow]:
    """Every skill of every tenant (ids None), or those of `ids` that still exist."""
    if ids is None:
        result = await conn.execute(text(f"SELECT {COLUMNS} FROM skills s ORDER BY s.id"))
    else:
        result = await conn.execute(
            text(f"SELECT {COLUMNS} FROM skills s WHERE s.id = ANY(:ids)"), {"ids": list(ids)}
        )
    return [_row(r) for r in result.all()]
