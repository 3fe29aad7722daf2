"""Keyset pages of every connection, for many owners in one statement.

A connection is described once by a `ConnectionSpec` (its table's shape, owner column,
order and optional filter). `load_pages` answers a batch of `(owner_id, page, filter)` keys
with the columns of the request's `Projection` of that shape: keys that share page
arguments and filter (the usual case: one field of a list of parents) become a single
statement that takes `first + 1` rows per owner through a LATERAL join on the owner's
keyset index.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from domain.pagination import Page, encode_cursor
from loaders.shapes import Projection, TableShape
from schema import types as t
from switchboard.infra.db import Database

ConnectionKey = tuple[uuid.UUID, Page, str | None]


@dataclass(frozen=True)
class ConnectionSpec:
    shape: TableShape  # the rows' table, columns (`id` and the sort column among its keys), mapper
    owner_column: str  # e.g. "campaign_id"
    sort_column: str  # "created_at" (newest first) or "expires_at" (soonest first)
    descending: bool
    where: str = ""  # a fixed condition, e.g. "t.status = 'PENDING'"
    filter_column: str | None = None  # the column the optional filter argument compares
    # More select-list expressions over `t`, read by the loader's `on_rows` (see `load_pages`).
    extra: str = ""

    def __post_init__(self) -> None:
        # A cursor is (sort value, id), both read from the page's rows by name, whatever
        # the operation reads.
        missing = {"id", self.sort_column} - set(self.shape.keys)
        if missing:
            raise ValueError(f"{self.shape.table}: the key columns must include {sorted(missing)}")


async def load_pages(
    db: Database,
    tenant_id: uuid.UUID,
    spec: ConnectionSpec,
    projection: Projection,
    keys: Sequence[ConnectionKey],
    on_rows: Callable[[Sequence[Any]], None] | None = None,
) -> list[t.Connection[Any]]:
    """The page of each key, its nodes of `projection`'s columns (one of `spec.shape`'s).
    `on_rows` sees every statement's rows (to prime other loaders with the spec's `extra`
    columns)."""
    groups: dict[tuple[Page, str | None], list[uuid.UUID]] = defaultdict(list)
    for owner_id, page, filter_value in keys:
        groups[(page, filter_value)].append(owner_id)
    pages: dict[ConnectionKey, t.Connection[Any]] = {}
    for (page, filter_value), owner_ids in groups.items():
        rows_by_owner = await _fetch_group(
            db, tenant_id, spec, projection, page, filter_value, owner_ids, on_rows
        )
        for owner_id in owner_ids:
            pages[(owner_id, page, filter_value)] = _connection(
                spec, projection, page, rows_by_owner.get(owner_id, [])
            )
    return [pages[key] for key in keys]


async def _fetch_group(
    db: Database,
    tenant_id: uuid.UUID,
    spec: ConnectionSpec,
    projection: Projection,
    page: Page,
    filter_value: str | None,
    owner_ids: list[uuid.UUID],
    on_rows: Callable[[Sequence[Any]], None] | None,
) -> dict[uuid.UUID, list[Any]]:
    conditions = ["t.tenant_id = :tenant_id", f"t.{spec.owner_column} = o.owner_id"]
    params: dict[str, Any] = {
        "tenant_id": tenant_id,
        "owner_ids": list(dict.fromkeys(owner_ids)),
        "limit": page.first + 1,
    }
    if spec.where:
        conditions.append(spec.where)
    if filter_value is not None and spec.filter_column:
        conditions.append(f"t.{spec.filter_column} = :filter_value")
        params["filter_value"] = str(filter_value)
    direction = "DESC" if spec.descending else "ASC"
    if page.after is not None:
        comparison = "<" if spec.descending else ">"
        conditions.append(f"(t.{spec.sort_column}, t.id) {comparison} (:after_sort, :after_id)")
        params["after_sort"], params["after_id"] = page.after
    columns = f"{projection.columns}, {spec.extra}" if spec.extra else projection.columns
    sql = f"""
        SELECT o.owner_id, p.* FROM unnest(CAST(:owner_ids AS uuid[])) AS o(owner_id)
        CROSS JOIN LATERAL (
            SELECT {columns} FROM {spec.shape.table} t
            WHERE {" AND ".join(conditions)}
            ORDER BY t.{spec.sort_column} {direction}, t.id {direction}
            LIMIT :limit
        ) p
    """
    rows = await db.fetch(sql, params)
    if on_rows is not None:
        on_rows(rows)
    rows_by_owner: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for row in rows:
        rows_by_owner[row["owner_id"]].append(row)
    return rows_by_owner


class _Edge(t.Edge):  # type: ignore[type-arg]
    """An Edge whose cursor is encoded when it is read: most operations select only the
    node, and encoding every edge's cursor cost about 1 ms of a DashboardOverview."""

    def __init__(self, sort_value: Any, row_id: uuid.UUID, node: Any) -> None:
        self.node = node
        self._position = (sort_value, row_id)

    @property  # type: ignore[override]
    def cursor(self) -> str:
        return encode_cursor(*self._position)


def _connection(
    spec: ConnectionSpec, projection: Projection, page: Page, rows: list[Any]
) -> t.Connection[Any]:
    has_next = len(rows) > page.first
    rows = rows[: page.first]
    sort_column, build = spec.sort_column, projection.build
    edges = [_Edge(row[sort_column], row["id"], build(row)) for row in rows]
    return t.Connection(
        edges=edges,
        page_info=t.PageInfo(
            has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None
        ),
    )
