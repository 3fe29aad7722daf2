"""The read side fetches what a planned operation reads, and only that.

- DashboardOverview shows each deliverable's latest activity without its output or
  instructions: its statements must not fetch them. The same query asking for the output
  gets it, and an operation graphql-core runs (the executor switched off) selects every
  column.
- The tenant's pending approvals come with the tenant's own row when the operation reads
  them, instead of in a statement of their own; not when it does not.

The answers themselves are held equal by test_execution_differential.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette

from tests.support.contract import VARIABLES, query_operations

DASHBOARD = query_operations("dashboard")["DashboardOverview"]
WITH_OUTPUT = DASHBOARD.replace("latestActivity {\n", "latestActivity {\n output\n", 1)


@contextmanager
def reads(app: Starlette) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(statement: str, _: Any) -> None:
        statements.append(statement)

    app.state.db.read_listeners.append(record)
    try:
        yield statements
    finally:
        app.state.db.read_listeners.remove(record)


def _activity_statement(statements: list[str]) -> str:
    return next(s for s in statements if "FROM activities t" in s)


async def _answer(gql: Any, token: Any, query: str) -> dict[str, Any]:
    response = await gql(query, dict(VARIABLES), token("acme"))
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


def _activities(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        d["node"]["latestActivity"]
        for c in data["tenant"]["campaigns"]["edges"]
        for d in c["node"]["deliverables"]["edges"]
        if d["node"]["latestActivity"]
    ]


async def test_the_dashboard_does_not_fetch_what_it_does_not_show(
    app: Starlette, gql: Any, token: Any
) -> None:
    assert WITH_OUTPUT != DASHBOARD
    with reads(app) as statements:
        data = await _answer(gql, token, DASHBOARD)
    assert _activities(data), "acme's dashboard shows no activity"
    activities = _activity_statement(statements)
    assert "t.status" in activities and "t.priority" in activities
    assert "t.output" not in activities and "t.instructions" not in activities
    assert "a.comment" not in activities  # the approval beside it: only what is shown

    with reads(app) as statements:
        data = await _answer(gql, token, WITH_OUTPUT)
    assert "t.output" in _activity_statement(statements)
    assert any(a["output"] for a in _activities(data))


async def test_graphql_core_selects_every_column(app: Starlette, gql: Any, token: Any) -> None:
    executor = app.state.graphql.execution
    executor.enabled = False
    try:
        with reads(app) as statements:
            data = await _answer(gql, token, DASHBOARD)
    finally:
        executor.enabled = True
    assert _activities(data)
    activities = _activity_statement(statements)
    assert "t.output" in activities and "t.instructions" in activities


async def test_the_tenant_row_brings_its_pending_count_when_it_is_read(
    app: Starlette, gql: Any, token: Any
) -> None:
    with reads(app) as statements:
        data = await _answer(gql, token, DASHBOARD)
    tenant_rows = [s for s in statements if "FROM tenants t" in s]
    assert len(tenant_rows) == 1 and "AS pending_approval_count" in tenant_rows[0]
    assert not [s for s in statements if "GROUP BY t.tenant_id" in s]
    assert data["tenant"]["pendingApprovalCount"] > 0

    with reads(app) as statements:
        await _answer(gql, token, "{ tenant { name } }")
    assert [s for s in statements if "FROM tenants t" in s]
    assert not [s for s in statements if "pending_approval_count" in s]
