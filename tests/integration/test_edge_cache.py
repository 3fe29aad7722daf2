"""The response cache: hits, invalidation within a second, tenants and roles kept apart,
one recomputation per key, errors never cached, and its hit rate."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from domain.ids import to_global_id
from domain.llm_calls import NewLlmCall
from domain.store.events import record_event
from domain.store.llm_calls import record_llm_call
from switchboard.devdata.seed import seed_demo, stable_id
from switchboard.edge.invalidation import INVALIDATES, groups_for, invalidate
from switchboard.execution import response_cache
from switchboard.execution.response_cache import cache_stats
from tests.conftest import Servers
from tests.support.edge import (
    MANIFEST,
    MOBILE_HOME_ID,
    bearer,
    clear_edge_keys,
    gateway,
    persisted,
    server_timing,
)

SLUG = "vandelay"
HOME = {"extensions": persisted(MOBILE_HOME_ID)}
SPEND = """query Spend($from: DateTime!, $to: DateTime!) { tenant {
  spend(from: $from, to: $to) { totalUsd callCount }
  byAgent: spendReport(from: $from, to: $to, groupBy: AGENT) { key totalUsd }
  byDay: spendReport(from: $from, to: $to, groupBy: DAY) { key totalUsd } } }"""


@pytest.fixture(scope="module")
async def engine(servers: Servers) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(servers.database_url)
    async with engine.begin() as conn:
        await seed_demo(conn, {SLUG: ("Vandelay Industries", Decimal("500.00"))})
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
async def empty_cache(servers: Servers) -> None:
    await clear_edge_keys(servers.redis_url, "rc:*")


def _window() -> dict[str, str]:
    now = dt.datetime.now(dt.UTC)
    return {
        "from": (now - dt.timedelta(days=30)).isoformat(),
        "to": (now + dt.timedelta(days=1)).isoformat(),
    }


def _outcomes(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return server_timing(response).get("cache", "").split()


async def _record_call(engine: AsyncEngine, db_conn: asyncpg.Connection, cost: str) -> None:
    tenant_id = stable_id(SLUG, "tenant")
    activity = await db_conn.fetchrow(
        "SELECT a.id, g.model FROM activities a JOIN agents g ON g.id = a.agent_id "
        "WHERE a.tenant_id = $1 ORDER BY a.id LIMIT 1",
        tenant_id,
    )
    call = NewLlmCall(
        activity_id=activity["id"],
        provider="openai",
        model=activity["model"],
        input_tokens=1000,
        output_tokens=100,
        cost_usd=Decimal(cost),
        latency_ms=500,
    )
    async with engine.begin() as conn:
        assert await record_llm_call(conn, tenant_id, call) is not None


async def test_mobile_home_and_spend_are_served_from_the_cache(
    servers: Servers, token: Any, engine: AsyncEngine
) -> None:
    mobile = bearer(token(SLUG, "marketer", "mobile"))
    dashboard = bearer(token(SLUG, "marketer"))
    spend = {"query": SPEND, "variables": _window()}
    before = cache_stats()
    async with gateway(servers, response_cache=True) as (app, client):
        first = await client.post("/graphql", json=HOME, headers=mobile)
        second = await client.post("/graphql", json=HOME, headers=mobile)
        assert (_outcomes(first), _outcomes(second)) == (["miss"], ["hit"])
        assert first.json() == second.json()
        assert first.json()["data"]["viewer"]["displayName"]
        # spend and each spendReport are entries of their own.
        cold = await client.post("/graphql", json=spend, headers=dashboard)
        warm = await client.post("/graphql", json=spend, headers=dashboard)
        assert (_outcomes(cold), _outcomes(warm)) == (["miss"] * 3, ["hit"] * 3)
        assert cold.json() == warm.json()
        # Other variables: another entry.
        other = {"query": SPEND, "variables": {**_window(), "to": "2100-01-01T00:00:00Z"}}
        assert _outcomes(await client.post("/graphql", json=other, headers=dashboard)) == (
            ["miss"] * 3
        )
        stats = app.state.graphql.response_cache.stats
        assert (stats.hits, stats.misses, stats.stores) == (4, 7, 7)
        assert stats.hit_rate == pytest.approx(4 / 11)
        shared = await app.state.graphql.response_cache.shared_stats()
        assert shared["home:hits"] >= 1 and shared["spend:misses"] >= 6
    after = cache_stats()
    assert after["hits"] - before["hits"] == 4 and 0 < after["hit_rate"] <= 1


async def test_a_new_llm_call_shows_within_one_second(
    servers: Servers, token: Any, engine: AsyncEngine, db_conn: asyncpg.Connection
) -> None:
    mobile = bearer(token(SLUG, "viewer", "mobile"))
    dashboard = bearer(token(SLUG, "viewer"))
    spend = {"query": SPEND, "variables": _window()}
    redis = Redis.from_url(servers.redis_url)
    tenant_id = stable_id(SLUG, "tenant")

    def month_spend(response: httpx.Response) -> Decimal:
        return Decimal(response.json()["data"]["mobileHome"]["spendThisMonthUsd"])

    def total(response: httpx.Response) -> Decimal:
        return Decimal(response.json()["data"]["tenant"]["spend"]["totalUsd"])

    try:
        async with gateway(servers, response_cache=True) as (_, client):
            home0 = await client.post("/graphql", json=HOME, headers=mobile)
            spend0 = await client.post("/graphql", json=spend, headers=dashboard)
            # A write that does not invalidate stays unseen: the answers are cached.
            await _record_call(engine, db_conn, "1.250000")
            stale = await client.post("/graphql", json=HOME, headers=mobile)
            assert _outcomes(stale) == ["hit"] and month_spend(stale) == month_spend(home0)
            # As a mutation does after its commit: invalidate by its event.
            await _record_call(engine, db_conn, "2.000000")
            committed = time.perf_counter()
            await invalidate(redis, [(tenant_id.hex, "SPEND_UPDATED")])
            home1 = await client.post("/graphql", json=HOME, headers=mobile)
            spend1 = await client.post("/graphql", json=spend, headers=dashboard)
            seen = time.perf_counter() - committed
            assert _outcomes(home1) == ["miss"] and _outcomes(spend1) == ["miss"] * 3
            assert month_spend(home1) == month_spend(home0) + Decimal("3.25")
            assert total(spend1) == total(spend0) + Decimal("3.25")
            assert seen < 1.0
            # An approval changes mobileHome only: spend stays cached.
            await invalidate(redis, [(tenant_id.hex, "APPROVAL_RESOLVED")])
            assert _outcomes(await client.post("/graphql", json=HOME, headers=mobile)) == ["miss"]
            assert _outcomes(await client.post("/graphql", json=spend, headers=dashboard)) == (
                ["hit"] * 3
            )
    finally:
        await redis.aclose()


RESOLVE = """mutation($input: ResolveApprovalInput!) { resolveApproval(input: $input) {
  approval { id status } userErrors { code } } }"""


async def test_a_mutations_events_invalidate_once_it_commits(
    servers: Servers, token: Any, engine: AsyncEngine, db_conn: asyncpg.Connection
) -> None:
    """No call in the mutation: the tenant events it commits invalidate (through the relay)."""
    mobile = bearer(token(SLUG, "marketer", "mobile"))
    dashboard = bearer(token(SLUG, "marketer"))
    tenant_id = stable_id(SLUG, "tenant")
    live = Redis.from_url(servers.redis_url)
    generation = response_cache.generation_key(tenant_id.hex, "home")
    try:
        async with gateway(servers, response_cache=True) as (app, client):
            home = await client.post("/graphql", json=HOME, headers=mobile)
            assert _outcomes(await client.post("/graphql", json=HOME, headers=mobile)) == ["hit"]
            pending = home.json()["data"]["mobileHome"]["pendingApprovalCount"]
            # A transaction that records an event and rolls back invalidates nothing.
            before = await live.get(generation)
            with pytest.raises(RuntimeError):
                async with app.state.db.transaction() as conn:
                    await record_event(conn, tenant_id, "APPROVAL_CREATED")
                    raise RuntimeError("rolled back")
            await app.state.relay.relay_pending()  # a pass that would see its events
            assert await live.get(generation) == before
            assert _outcomes(await client.post("/graphql", json=HOME, headers=mobile)) == ["hit"]
            # The resolveApproval mutation, as the dashboard sends it.
            approval = await db_conn.fetchval(
                "SELECT id FROM approvals WHERE tenant_id = $1 AND status = 'PENDING' "
                "ORDER BY expires_at LIMIT 1",
                tenant_id,
            )
            variables = {
                "input": {"approvalId": to_global_id("Approval", approval), "decision": "APPROVE"}
            }
            resolved = await client.post(
                "/graphql", json={"query": RESOLVE, "variables": variables}, headers=dashboard
            )
            committed = time.perf_counter()
            assert resolved.json()["data"]["resolveApproval"]["approval"]["status"] == "APPROVED"
            while True:  # fresh within a second: read until it shows
                fresh = await client.post("/graphql", json=HOME, headers=mobile)
                count = fresh.json()["data"]["mobileHome"]["pendingApprovalCount"]
                if count == pending - 1:
                    break
                assert time.perf_counter() - committed < 1.0, "still stale after a second"
            assert time.perf_counter() - committed < 1.0
    finally:
        await live.aclose()


async def test_an_invalidation_that_could_not_reach_redis_is_applied_later(
    servers: Servers, token: Any, engine: AsyncEngine, db_conn: asyncpg.Connection
) -> None:
    """The write path's Redis call failed: this process reads around the cache until its
    next call to Redis bumps the generation for everyone."""
    mobile = bearer(token(SLUG, "owner", "mobile"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = Redis.from_url(f"redis://127.0.0.1:{s.getsockname()[1]}/0")
    live = Redis.from_url(servers.redis_url)
    tenant_hex = stable_id(SLUG, "tenant").hex
    generation = response_cache.generation_key(tenant_hex, "home")
    try:
        async with gateway(servers, response_cache=True) as (_, client):
            warm = await client.post("/graphql", json=HOME, headers=mobile)
            assert _outcomes(warm) == ["miss"]
            before = int(await live.get(generation) or 0)
            await _record_call(engine, db_conn, "0.500000")
            await invalidate(dead, [(stable_id(SLUG, "tenant").hex, "SPEND_UPDATED")])
            assert (tenant_hex, "home") in response_cache.pending
            fresh = await client.post("/graphql", json=HOME, headers=mobile)
            assert _outcomes(fresh) == ["miss"]
            spent = Decimal(fresh.json()["data"]["mobileHome"]["spendThisMonthUsd"])
            assert spent == Decimal(warm.json()["data"]["mobileHome"]["spendThisMonthUsd"]) + (
                Decimal("0.5")
            )
            assert not response_cache.pending
            assert int(await live.get(generation)) == before + 1
    finally:
        await dead.aclose()
        await live.aclose()


async def test_entries_never_cross_tenants_or_roles(servers: Servers, token: Any) -> None:
    async with gateway(servers, response_cache=True) as (_, client):
        answers = {}
        for slug, role in (("acme", "marketer"), ("globex", "marketer"), ("acme", "viewer")):
            auth = bearer(token(slug, role, "mobile"))
            first = await client.post("/graphql", json=HOME, headers=auth)
            again = await client.post("/graphql", json=HOME, headers=auth)
            assert (_outcomes(first), _outcomes(again)) == (["miss"], ["hit"]), (slug, role)
            answers[slug, role] = first.json()["data"]["mobileHome"]
        assert Decimal(answers["acme", "marketer"]["monthlySpendCapUsd"]) == 400
        assert Decimal(answers["globex", "marketer"]["monthlySpendCapUsd"]) == 250
        acme_ids = {a["id"] for a in answers["acme", "marketer"]["recentActivities"]}
        globex_ids = {a["id"] for a in answers["globex", "marketer"]["recentActivities"]}
        assert acme_ids and globex_ids and not acme_ids & globex_ids
    redis = Redis.from_url(servers.redis_url)
    try:
        keys = [k.decode() async for k in redis.scan_iter(match="rc:{t:*}:home:g*", count=1000)]
    finally:
        await redis.aclose()
    entries = [k for k in keys if not k.endswith(":lock")]
    acme, globex = stable_id("acme", "tenant").hex, stable_id("globex", "tenant").hex
    assert len([k for k in entries if acme in k]) == 2  # marketer and viewer
    assert len([k for k in entries if globex in k]) == 1
    assert {k.split(":")[5] for k in entries} == {"MARKETER", "VIEWER"}


async def test_one_recomputation_per_key(servers: Servers, token: Any) -> None:
    auth = bearer(token("acme", "admin", "mobile"))
    async with gateway(servers, response_cache=True) as (app, client):
        responses = await asyncio.gather(
            *(client.post("/graphql", json=HOME, headers=auth) for _ in range(20))
        )
        assert {r.status_code for r in responses} == {200}
        assert len({r.content for r in responses}) == 1
        stats = app.state.graphql.response_cache.stats
        assert stats.computes == 1 and stats.coalesced == 19
    await clear_edge_keys(servers.redis_url, "rc:*")
    # Across instances: the Redis lock lets one compute while the other waits for it.
    async with (
        gateway(servers, response_cache=True) as (one, first),
        gateway(servers, response_cache=True) as (two, second),
    ):
        responses = await asyncio.gather(
            *(c.post("/graphql", json=HOME, headers=auth) for c in (first, second) * 10)
        )
        assert {r.status_code for r in responses} == {200}
        assert len({r.content for r in responses}) == 1
        caches = [app.state.graphql.response_cache.stats for app in (one, two)]
        assert sum(s.computes for s in caches) == 1
        assert sum(s.waited + s.hits for s in caches) >= 1


async def test_errors_are_never_cached(servers: Servers, agent_token: Any) -> None:
    auth = bearer(agent_token("acme", "COPYWRITER"))
    async with gateway(servers, response_cache=True) as (app, client):
        for _ in range(3):
            response = await client.post(
                "/graphql", json={"query": "{ mobileHome { pendingApprovalCount } }"}, headers=auth
            )
            assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
            assert _outcomes(response) == ["miss"]
        assert app.state.graphql.response_cache.stats.stores == 0
        assert app.state.graphql.response_cache.stats.uncacheable == 3


async def test_entries_expire_after_their_ttl(servers: Servers, token: Any) -> None:
    """The TTL is under test: waiting for it is the point (it is one second here)."""
    auth = bearer(token("acme", "owner", "mobile"))
    async with gateway(servers, response_cache=True, cache_home_ttl_s=1) as (_, client):
        assert _outcomes(await client.post("/graphql", json=HOME, headers=auth)) == ["miss"]
        stored = time.monotonic()
        assert _outcomes(await client.post("/graphql", json=HOME, headers=auth)) == ["hit"]
        await asyncio.sleep(max(0.0, 1.05 - (time.monotonic() - stored)))
        assert _outcomes(await client.post("/graphql", json=HOME, headers=auth)) == ["miss"]


def test_the_invalidation_mapping() -> None:
    assert groups_for(["SPEND_UPDATED"]) == {"home", "spend"}
    assert groups_for(["APPROVAL_CREATED", "ACTIVITY_STATUS_CHANGED"]) == {"home"}
    assert groups_for(["CAMPAIGN_UPDATED"]) == {"home", "spend"}
    assert groups_for(["SOMETHING_NEW"]) == {"home", "spend"}  # unknown: everything
    from domain.events import EVENT_TYPES

    assert set(EVENT_TYPES) <= set(INVALIDATES)  # every event type of the domain is mapped
    assert MANIFEST["MobileHome"]["type"] == "query"
