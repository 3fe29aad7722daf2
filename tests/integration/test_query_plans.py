"""Every statement behind the contract's operations uses an index on the bench tenant.

The bench tenant (1M LLM calls, 10k activities, 1k pending approvals) is loaded into the
test database once for this module. Each dashboard and mobile query runs as its marketer;
every statement the gateway issues is captured and EXPLAINed with its real parameters,
both as a custom plan and as the generic plan a prepared statement may switch to. No plan
may scan a large table sequentially.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import orjson
import pytest
from sqlalchemy import event
from starlette.applications import Starlette

from switchboard.devdata.bench import seed_bench
from tests.conftest import Servers
from tests.support.contract import query_operations

LARGE_TABLE_ROWS = 5_000


@pytest.fixture(scope="module")
async def bench_loaded(servers: Servers) -> None:
    await seed_bench(servers.database_url)


@pytest.fixture
async def captured(app: Starlette) -> AsyncIterator[list[tuple[str, tuple[Any, ...]]]]:
    """The statements the operations issue; the outbox relay, which runs beside them in
    the background, is stopped meanwhile: its reads use the outbox's partial indexes."""
    statements: list[tuple[str, tuple[Any, ...]]] = []
    engine = app.state.db.engine.sync_engine

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, tuple(parameters or ())))

    def record_read(statement: str, parameters: Any) -> None:
        statements.append((statement, tuple(parameters)))

    await app.state.relay.stop()
    event.listen(engine, "before_cursor_execute", record)
    app.state.db.read_listeners.append(record_read)  # reads that bypass SQLAlchemy's events
    yield statements
    app.state.db.read_listeners.remove(record_read)
    event.remove(engine, "before_cursor_execute", record)
    app.state.relay.start()


def _seq_scans(plan: dict[str, Any]) -> Iterator[str]:
    if plan.get("Node Type") == "Seq Scan":
        yield plan["Relation Name"]
    for child in plan.get("Plans", []):
        yield from _seq_scans(child)


async def _variables(gql: Any, token: str) -> dict[str, Any]:
    data = (
        await gql(
            "{ tenant { agents { id role } campaigns(first: 1, status: ACTIVE) "
            "{ edges { node { id } } } } approvalQueue(first: 1) { edges { node { id } } } }",
            token=token,
        )
    ).json()["data"]
    now = dt.datetime.now(dt.UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {
        "monthStart": month.isoformat(),
        "monthEnd": (month + dt.timedelta(days=32)).replace(day=1).isoformat(),
        "from": (now - dt.timedelta(days=90)).isoformat(),
        "to": now.isoformat(),
        "query": "keyword research",
        "ids": {
            "AgentActivity": next(
                a["id"] for a in data["tenant"]["agents"] if a["role"] == "COPYWRITER"
            ),
            "CampaignDetail": data["tenant"]["campaigns"]["edges"][0]["node"]["id"],
            "MobileApprovalDetail": data["approvalQueue"]["edges"][0]["node"]["id"],
        },
    }


async def test_no_operation_scans_a_large_table(
    bench_loaded: None,
    gql: Any,
    token: Any,
    captured: list[tuple[str, tuple[Any, ...]]],
    db_conn: asyncpg.Connection,
) -> None:
    bench_token = token("bench")
    variables = await _variables(gql, bench_token)
    ids = variables.pop("ids")
    large = {
        row["relname"]
        for row in await db_conn.fetch(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND reltuples > $1",
            LARGE_TABLE_ROWS,
        )
    }
    assert {"llm_calls", "activities", "approvals"} <= large

    captured.clear()
    for name, text in query_operations("dashboard", "mobile").items():
        response = await gql(text, {**variables, "id": ids.get(name, "x")}, bench_token)
        assert "errors" not in response.json(), name
    assert len(captured) > 20

    offenders = []
    for statement, parameters in captured:
        for mode in ("force_custom_plan", "force_generic_plan"):
            await db_conn.execute(f"SET plan_cache_mode = {mode}")
            explained = await db_conn.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *parameters)
            plan = orjson.loads(explained)[0]["Plan"]
            offenders += [
                (mode, table, statement.strip()[:200])
                for table in _seq_scans(plan)
                if table in large
            ]
    await db_conn.execute("RESET plan_cache_mode")
    assert offenders == []
