"""Skills' rows: creating and changing a skill, two-stage loading for agent runs, and what
the search index is built from (the rules: domain/skills.py).

- `create_skill` / `update_skill`, each inside the caller's one transaction;
- two-stage loading for agent runs: `manifest` (names and one-line summaries of the skills
  a role may use: the role's own and the role-less ones) goes into a run's first prompt;
  `load_for_run` fetches one skill's content when the run asks for it by name (the tenant's
  own skill first, then a global one of that name);
- `rows_for_index`: what the search index (switchboard/skill_search/) is built from.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import Rejected
from domain.skills import MAX_NAME, ManifestEntry, SkillRow, check_owner, clean_fields

COLUMNS = "s.id, s.tenant_id, s.name, s.role, s.summary, s.content, s.updated_at"


def _row(r: Any) -> SkillRow:
    return SkillRow(*r)


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
    if owner is None:
        raise Rejected("NOT_FOUND", "No skill has this ID.", "id")
    check_owner(owner[0], tenant_id)
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


# Two-stage loading

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
    return [ManifestEntry(name=r.name, summary=r.summary) for r in rows]


async def load_for_run(
    conn: AsyncConnection, tenant_id: uuid.UUID, role: str, name: str
) -> SkillRow | None:
    """The skill a run asked for by name (case-insensitive), if its role may use it."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        return None
    row = (await conn.execute(_LOAD, {"tenant_id": tenant_id, "role": role, "name": name})).first()
    return None if row is None else _row(row)


# The search index's source


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
