"""Objects are built from rows by column name: the order of a select list does not matter.

- Each table's shape (its `*_FIELDS` and mapper) builds the same object from a row of the
  seeded data whether the columns come in their listed order or reversed with another
  column inserted in the middle.
- A connection's page (nodes, cursors, hasNextPage) is the same when its spec lists the
  columns in another order: the cursor's sort value and id are found by name.

The seeded tenants are only read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from starlette.applications import Starlette

import loaders
from domain.pagination import Page
from loaders import shapes
from loaders.connections import ConnectionSpec, load_pages
from switchboard.devdata.seed import stable_id

SHAPES: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    "tenants": (shapes.TENANT_FIELDS, shapes.tenant_from_row),
    "campaigns": (shapes.CAMPAIGN_FIELDS, shapes.campaign_from_row),
    "deliverables": (shapes.DELIVERABLE_FIELDS, shapes.deliverable_from_row),
    "activities": (shapes.ACTIVITY_FIELDS, shapes.activity_from_row),
    "approvals": (shapes.APPROVAL_FIELDS, shapes.approval_from_row),
    "agents": (shapes.AGENT_FIELDS, shapes.agent_from_row),
    "llm_calls": (shapes.LLM_CALL_FIELDS, shapes.llm_call_from_row),
    "skills": (shapes.SKILL_FIELDS, shapes.skill_from_row),
}


def _moved(fields: tuple[str, ...]) -> str:
    """The select list of `fields` reversed, with a column of another name in the middle."""
    reordered = [f"t.{field}" for field in reversed(fields)]
    middle = len(reordered) // 2
    return ", ".join([*reordered[:middle], "'inserted' AS inserted", *reordered[middle:]])


@pytest.mark.parametrize("table", sorted(SHAPES))
async def test_a_shape_reads_its_columns_by_name(db_conn: asyncpg.Connection, table: str) -> None:
    fields, build = SHAPES[table]
    listed = shapes.select_list(fields)
    # The row with the most values set, so that two columns read in each other's place
    # could not both be NULL and look alike.
    chosen = f"ORDER BY num_nonnulls({listed}) DESC, t.id LIMIT 1"
    row = await db_conn.fetchrow(f"SELECT {listed} FROM {table} t {chosen}")
    assert row is not None, f"the seed has no {table}"
    moved = await db_conn.fetchrow(f"SELECT {_moved(fields)} FROM {table} t {chosen}")
    assert list(moved.keys()) != list(row.keys())

    assert build(moved) == build(row)
    assert vars(build(moved)) == vars(build(row))


@pytest.mark.parametrize(
    "spec",
    [
        loaders.CAMPAIGNS,
        loaders.DELIVERABLES,
        loaders.ACTIVITIES_OF_AGENT,
        loaders.PENDING_APPROVALS_OF_TENANT,
        loaders.LLM_CALLS_OF_ACTIVITY,
    ],
    ids=lambda spec: f"{spec.shape.table}.{spec.owner_column}",
)
async def test_a_page_finds_its_cursor_columns_by_name(
    app: Starlette, db_conn: asyncpg.Connection, spec: ConnectionSpec
) -> None:
    tenant_id = stable_id("acme", "tenant")
    owner_ids = [
        r["owner"]
        for r in await db_conn.fetch(
            f"SELECT {spec.owner_column} AS owner FROM {spec.shape.table} "
            f"WHERE tenant_id = $1 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 3",
            tenant_id,
        )
    ]
    assert owner_ids, f"acme has no {spec.shape.table}"
    shape = dataclasses.replace(spec.shape, fields=tuple(reversed(spec.shape.fields)))
    reordered = dataclasses.replace(spec, shape=shape)
    listed, moved = spec.shape.projection(None), shape.projection(None)
    assert moved.columns != listed.columns
    page = Page(2, None)
    keys = [(owner_id, page, None) for owner_id in owner_ids]

    expected = await load_pages(app.state.db, tenant_id, spec, listed, keys)
    found = await load_pages(app.state.db, tenant_id, reordered, moved, keys)

    def seen(connections: list[Any]) -> list[Any]:
        return [
            (
                [(edge.cursor, vars(edge.node)) for edge in connection.edges],
                connection.page_info,
            )
            for connection in connections
        ]

    assert any(connection.edges for connection in expected)
    assert seen(found) == seen(expected)


def test_a_spec_must_select_its_cursor_columns() -> None:
    keys = tuple(key for key in shapes.APPROVAL_KEYS if key != "expires_at")
    without = tuple(f for f in shapes.APPROVAL_FIELDS if f != "expires_at")
    # Not selected at all; or plain, which is selected only when an operation reads it.
    for shape in (
        dataclasses.replace(shapes.APPROVAL, fields=without, keys=keys),
        dataclasses.replace(shapes.APPROVAL, keys=keys),
    ):
        with pytest.raises(ValueError, match="expires_at"):
            dataclasses.replace(loaders.PENDING_APPROVALS_OF_TENANT, shape=shape)
