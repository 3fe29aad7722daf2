"""Recording LLM calls keeps every rollup exact, also when many calls land at once."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from domain.agents import call_cost
from domain.errors import BadUserInput
from domain.llm_calls import NewLlmCall
from domain.store.llm_calls import record_llm_call
from switchboard.devdata.seed import seed_demo, stable_id
from tests.conftest import Servers

SLUG = "hooli"


@pytest.fixture(scope="module")
async def engine(servers: Servers) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(servers.database_url, pool_size=10)
    async with engine.begin() as conn:
        await seed_demo(conn, {SLUG: ("Hooli", Decimal("300.00"))})
    yield engine
    await engine.dispose()


async def _activities(db_conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db_conn.fetch(
        "SELECT a.id, g.model FROM activities a JOIN agents g ON g.id = a.agent_id "
        "WHERE a.tenant_id = $1 ORDER BY a.id",
        stable_id(SLUG, "tenant"),
    )


def _call(activity: asyncpg.Record, rng: random.Random) -> NewLlmCall:
    input_tokens, output_tokens = rng.randint(1, 50_000), rng.randint(1, 8_000)
    return NewLlmCall(
        activity_id=activity["id"],
        provider="openai",
        model=activity["model"],
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=call_cost(activity["model"], input_tokens, output_tokens),
        latency_ms=rng.randint(100, 5000),
    )


async def _assert_rollups_match_raw(db_conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
    mismatched = await db_conn.fetch(
        """
        WITH raw AS (
            SELECT d.dimension, d.key, date_trunc('hour', c.created_at, 'UTC') AS hour,
                   sum(c.cost_usd) AS usd, sum(c.input_tokens) AS i, sum(c.output_tokens) AS o,
                   count(*) AS n
            FROM llm_calls c
            CROSS JOIN LATERAL (VALUES ('TENANT', ''), ('AGENT', c.agent_id::text),
                ('MODEL', c.model), ('CAMPAIGN', c.campaign_id::text)) AS d(dimension, key)
            WHERE c.tenant_id = $1 GROUP BY 1, 2, 3
        )
        SELECT * FROM raw FULL JOIN (SELECT * FROM llm_spend_hourly WHERE tenant_id = $1) h
            USING (dimension, key, hour)
        WHERE h.total_usd IS DISTINCT FROM raw.usd OR h.input_tokens IS DISTINCT FROM raw.i
           OR h.output_tokens IS DISTINCT FROM raw.o OR h.call_count IS DISTINCT FROM raw.n
        """,
        tenant_id,
    )
    assert mismatched == []
    stale_costs = await db_conn.fetch(
        """
        SELECT 'activity', a.id FROM activities a
        WHERE a.tenant_id = $1 AND a.cost_usd <> (SELECT coalesce(sum(cost_usd), 0)
            FROM llm_calls WHERE activity_id = a.id)
        UNION ALL
        SELECT 'deliverable', d.id FROM deliverables d
        WHERE d.tenant_id = $1 AND d.cost_usd <> (SELECT coalesce(sum(c.cost_usd), 0)
            FROM llm_calls c JOIN activities a ON a.id = c.activity_id
            WHERE a.deliverable_id = d.id)
        UNION ALL
        SELECT 'campaign', m.id FROM campaigns m
        WHERE m.tenant_id = $1 AND m.spent_usd <> (SELECT coalesce(sum(cost_usd), 0)
            FROM llm_calls WHERE campaign_id = m.id)
        """,
        tenant_id,
    )
    assert stale_costs == []


async def test_concurrent_calls_keep_every_rollup_exact(
    engine: AsyncEngine, db_conn: asyncpg.Connection, gql: Any, token: Any
) -> None:
    tenant_id = stable_id(SLUG, "tenant")
    activities = await _activities(db_conn)
    calls_of_tenant = "SELECT count(*) FROM llm_calls WHERE tenant_id = $1"
    before = await db_conn.fetchval(calls_of_tenant, tenant_id)
    rng = random.Random(7)
    now = dt.datetime.now(dt.UTC)
    # Many writers on few activities and hours, so they contend for the same rollup rows.
    jobs = [
        (_call(rng.choice(activities[:5]), rng), now - dt.timedelta(minutes=rng.randint(0, 180)))
        for _ in range(240)
    ]

    async def writer(share: list[tuple[NewLlmCall, dt.datetime]]) -> None:
        for call, at in share:
            async with engine.begin() as conn:
                assert await record_llm_call(conn, tenant_id, call, at) is not None

    await asyncio.gather(*(writer(jobs[i::8]) for i in range(8)))

    after = await db_conn.fetchval(calls_of_tenant, tenant_id)
    assert after == before + len(jobs)
    await _assert_rollups_match_raw(db_conn, tenant_id)

    start, end = now - dt.timedelta(hours=3, minutes=17), now + dt.timedelta(seconds=1)
    raw = await db_conn.fetchrow(
        "SELECT sum(cost_usd), count(*) FROM llm_calls "
        "WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3",
        tenant_id,
        start,
        end,
    )
    response = await gql(
        "query($f: DateTime!, $t: DateTime!) { tenant { spend(from: $f, to: $t) "
        "{ totalUsd callCount } } }",
        {"f": start.isoformat(), "t": end.isoformat()},
        token(SLUG),
    )
    spend = response.json()["data"]["tenant"]["spend"]
    assert Decimal(spend["totalUsd"]) == raw[0]
    assert spend["callCount"] == raw[1]


async def test_a_call_for_another_tenants_activity_writes_nothing(
    engine: AsyncEngine, db_conn: asyncpg.Connection
) -> None:
    foreign = await db_conn.fetchrow(
        "SELECT a.id, g.model FROM activities a JOIN agents g ON g.id = a.agent_id "
        "WHERE a.tenant_id = $1 LIMIT 1",
        stable_id("globex", "tenant"),
    )
    count = "SELECT count(*) FROM llm_calls"
    before = await db_conn.fetchval(count)
    async with engine.begin() as conn:
        recorded = await record_llm_call(
            conn, stable_id(SLUG, "tenant"), _call(foreign, random.Random(1))
        )
    assert recorded is None
    assert await db_conn.fetchval(count) == before


@pytest.mark.parametrize(
    "change",
    [
        {"input_tokens": -1},
        {"cost_usd": Decimal("-0.01")},
        {"cost_usd": Decimal("0.0000001")},
        {"model": ""},
        {"provider": "x" * 101},
        {"latency_ms": 2**31},
    ],
)
async def test_figures_that_break_a_rule_are_refused_and_nothing_is_written(
    engine: AsyncEngine, db_conn: asyncpg.Connection, change: dict[str, Any]
) -> None:
    activity = (await _activities(db_conn))[0]
    bad = dataclasses.replace(_call(activity, random.Random(2)), **change)
    before = await db_conn.fetchval("SELECT count(*) FROM llm_calls")
    with pytest.raises(BadUserInput):
        async with engine.begin() as conn:
            await record_llm_call(conn, stable_id(SLUG, "tenant"), bad)
    assert await db_conn.fetchval("SELECT count(*) FROM llm_calls") == before


async def test_a_busy_months_token_sums_are_exact_past_the_32_bit_int(
    engine: AsyncEngine, db_conn: asyncpg.Connection, gql: Any, token: Any
) -> None:
    # Its own tenant: a call of ~110 million input tokens every day of January, over
    # 3 billion in the month, past GraphQL's 32-bit Int: BigInt carries the exact sum.
    slug = "massive"
    async with engine.begin() as conn:
        await seed_demo(conn, {slug: ("Massive Dynamic", None)})
    tenant_id = stable_id(slug, "tenant")
    activity = (
        await db_conn.fetch(
            "SELECT a.id, g.model FROM activities a JOIN agents g ON g.id = a.agent_id "
            "WHERE a.tenant_id = $1 LIMIT 1",
            tenant_id,
        )
    )[0]
    base = _call(activity, random.Random(3))
    expected_input = expected_output = 0
    async with engine.begin() as conn:
        for day in range(1, 32):
            call = dataclasses.replace(
                base, input_tokens=2**31 // 20 + day, output_tokens=7_000_000 + day
            )
            at = dt.datetime(2026, 1, day, 10, 30, tzinfo=dt.UTC)
            assert await record_llm_call(conn, tenant_id, call, at) is not None
            expected_input += call.input_tokens
            expected_output += call.output_tokens
    assert expected_input > 3_000_000_000
    window = 'from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z"'
    response = await gql(
        f"{{ tenant {{ spend({window}) {{ inputTokens outputTokens callCount }} "
        f"byDay: spendReport({window}, groupBy: DAY) {{ inputTokens }} }} }}",
        token=token(slug),
    )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    spend = body["data"]["tenant"]["spend"]
    assert spend == {
        "inputTokens": expected_input,
        "outputTokens": expected_output,
        "callCount": 31,
    }
    days = body["data"]["tenant"]["byDay"]
    assert len(days) == 31 and sum(d["inputTokens"] for d in days) == expected_input
