"""Read replicas (DATABASE_REPLICA_URLS) against a real streaming replica made with
pg_basebackup: the read side's statements go to it, a tenant reads its own writes at once
even while the replica replays nothing, a replica that lags past the bound or stops is
skipped (one log line) and used again once it is back; a change committed outside the
gateway shows once the relay has published it; without Redis the reads go to the primary."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

from domain.store import campaigns
from switchboard.app import create_app
from switchboard.devdata.seed import seed_demo, seeding_anchor, stable_id
from switchboard.infra.replicas import KEY_PREFIX
from switchboard.observability import metrics
from switchboard.settings import Settings
from tests.conftest import TEST_TENANTS, Servers
from tests.support.faults import DedicatedPostgres, DedicatedValkey
from tests.support.replica import StreamingReplica

DATABASE = "switchboard"
ACME = stable_id("acme", "tenant")
GLOBEX = stable_id("globex", "tenant")
CAMPAIGNS = "{ tenant { campaigns(first: 100) { edges { node { id name } } } } }"
CREATE = """mutation($input: CreateCampaignInput!) { createCampaign(input: $input) {
  campaign { id name tenant { campaigns(first: 100) { edges { node { id name } } } } }
  userErrors { code } } }"""


@pytest.fixture(scope="module")
def primary() -> Iterator[DedicatedPostgres]:
    server = DedicatedPostgres()
    yield server
    server.close()


@pytest.fixture(scope="module")
async def primary_url(primary: DedicatedPostgres) -> str:
    url = await primary.database(DATABASE)
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await seed_demo(conn, TEST_TENANTS, anchor=seeding_anchor())
    await engine.dispose()
    return url


@pytest.fixture(scope="module")
def replica(primary: DedicatedPostgres, primary_url: str) -> Iterator[StreamingReplica]:
    server = StreamingReplica(primary)
    yield server
    server.close()


@pytest.fixture
async def clean_replica(replica: StreamingReplica) -> AsyncIterator[StreamingReplica]:
    """The replica replaying and running at the start and the end of a test."""
    yield replica
    if not replica.running:
        await asyncio.to_thread(replica.start)
    await replica.resume()


@pytest.fixture
async def primary_conn(primary_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(primary_url.replace("postgresql+asyncpg", "postgresql", 1))
    yield conn
    await conn.close()


@contextlib.asynccontextmanager
async def gateway(
    servers: Servers,
    primary_url: str,
    replica: StreamingReplica,
    max_lag_ms: int,
    relay: bool = True,
) -> AsyncIterator[httpx.AsyncClient]:
    redis = Redis.from_url(servers.redis_url)
    await redis.delete(*(KEY_PREFIX + tenant.hex for tenant in (ACME, GLOBEX)))
    await redis.aclose()
    settings = Settings(
        database_url=primary_url,
        redis_url=servers.redis_url,
        mode="test",
        database_replica_urls=(replica.url(DATABASE),),
        replica_max_lag_ms=max_lag_ms,
        replica_poll_ms=50,
        live_relay=relay,
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def reads(target: str, reason: str) -> float:
    return metrics.DB_READS.labels(target, reason)._value.get()


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10) -> None:
    """Check `condition` every 20 ms until it holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(0.02)


async def campaign_names(client: httpx.AsyncClient, token: str) -> dict[str, str]:
    response = await client.post(
        "/graphql", json={"query": CAMPAIGNS}, headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    edges = body["data"]["tenant"]["campaigns"]["edges"]
    return {edge["node"]["id"]: edge["node"]["name"] for edge in edges}


async def rename_directly(conn: asyncpg.Connection, tenant: uuid.UUID) -> str:
    """A change on the primary that no mutation records (no event, no recorded position)."""
    name = f"renamed {uuid.uuid4().hex[:8]}"
    await conn.execute(
        "UPDATE campaigns SET name = $1 WHERE id = "
        "(SELECT id FROM campaigns WHERE tenant_id = $2 ORDER BY created_at LIMIT 1)",
        name,
        tenant,
    )
    return name


async def served_by_replica(client: httpx.AsyncClient, token: str) -> bool:
    before = reads("replica", "caught_up")
    await campaign_names(client, token)
    return reads("replica", "caught_up") > before


def skip_lines(caplog: pytest.LogCaptureFixture, replica: StreamingReplica) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "switchboard.infra.replicas"
        and record.levelno == logging.WARNING
        and str(replica.port) in record.getMessage()
    ]


async def test_reads_go_to_the_replica_and_a_tenant_reads_its_own_writes(
    servers: Servers,
    primary_url: str,
    clean_replica: StreamingReplica,
    primary_conn: asyncpg.Connection,
    token: Any,
) -> None:
    replica = clean_replica
    async with gateway(servers, primary_url, replica, max_lag_ms=60_000) as client:
        await until(lambda: served_by_replica(client, token("globex")), "reads on the replica")
        # The replica itself ran the loaders' statements.
        ran = await replica.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'switchboard' "
            "AND datname = 'switchboard' AND query LIKE '%FROM campaigns%'"
        )
        assert ran >= 1

        await replica.pause()  # from here the replica shows the data as of now
        renamed = await rename_directly(primary_conn, GLOBEX)
        assert renamed not in (await campaign_names(client, token("globex"))).values()

        own_writes_before = reads("primary", "own_write")
        response = await client.post(
            "/graphql",
            json={"query": CREATE, "variables": {"input": {"name": "Read my write"}}},
            headers={"authorization": f"Bearer {token('acme', 'marketer')}"},
        )
        payload = response.json()["data"]["createCampaign"]
        assert payload["userErrors"] == []
        created = payload["campaign"]["id"]
        # The payload's own reads, and another member's next query, see the write.
        edges = payload["campaign"]["tenant"]["campaigns"]["edges"]
        assert created in [edge["node"]["id"] for edge in edges]
        seen_by_viewer = await campaign_names(client, token("acme", "viewer"))
        assert seen_by_viewer[created] == "Read my write"
        assert reads("primary", "own_write") > own_writes_before
        # globex wrote nothing: its reads still come from the paused replica.
        assert renamed not in (await campaign_names(client, token("globex"))).values()

        await replica.resume()

        async def replayed() -> bool:
            return renamed in (await campaign_names(client, token("globex"))).values()

        await until(replayed, "the replica replays the change")
        await until(lambda: served_by_replica(client, token("acme")), "acme back on the replica")


async def test_a_replica_lagging_past_the_bound_is_skipped_until_it_catches_up(
    servers: Servers,
    primary_url: str,
    clean_replica: StreamingReplica,
    primary_conn: asyncpg.Connection,
    token: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    replica = clean_replica
    caplog.set_level(logging.INFO, logger="switchboard.infra.replicas")
    async with gateway(servers, primary_url, replica, max_lag_ms=200) as client:
        await until(lambda: served_by_replica(client, token("globex")), "reads on the replica")
        assert skip_lines(caplog, replica) == []

        await replica.pause()
        renamed = await rename_directly(primary_conn, GLOBEX)

        async def fresh() -> bool:
            return renamed in (await campaign_names(client, token("globex"))).values()

        # Within the bound (and a poll or two) the change shows: read from the primary.
        started = time.monotonic()
        await until(fresh, "the change shows though the replica replays nothing")
        assert time.monotonic() - started < 1.0
        for _ in range(20):
            assert renamed in (await campaign_names(client, token("globex"))).values()
        lines = skip_lines(caplog, replica)
        assert len(lines) == 1, lines
        assert "behind the primary" in lines[0]

        await replica.resume()
        await until(lambda: served_by_replica(client, token("globex")), "the replica used again")
        assert len(skip_lines(caplog, replica)) == 1
        assert any("back after" in record.getMessage() for record in caplog.records)


async def test_a_stopped_replica_is_skipped_and_used_again_when_it_returns(
    servers: Servers,
    primary_url: str,
    clean_replica: StreamingReplica,
    token: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    replica = clean_replica
    caplog.set_level(logging.INFO, logger="switchboard.infra.replicas")
    async with gateway(servers, primary_url, replica, max_lag_ms=200) as client:
        await until(lambda: served_by_replica(client, token("globex")), "reads on the replica")
        expected = await campaign_names(client, token("globex"))

        await asyncio.to_thread(replica.stop)
        # Every read still answers, from the primary.
        for _ in range(20):
            assert await campaign_names(client, token("globex")) == expected
        await until(lambda: skipped(caplog, replica), "the stopped replica is skipped", timeout_s=5)
        assert not await served_by_replica(client, token("globex"))
        lines = skip_lines(caplog, replica)
        assert len(lines) == 1, lines

        await asyncio.to_thread(replica.start)
        await until(lambda: served_by_replica(client, token("globex")), "the replica used again")
        assert await campaign_names(client, token("globex")) == expected
        assert len(skip_lines(caplog, replica)) == 1


async def skipped(caplog: pytest.LogCaptureFixture, replica: StreamingReplica) -> bool:
    return bool(skip_lines(caplog, replica))


async def test_a_change_committed_outside_the_gateway_shows_once_the_relay_publishes_it(
    servers: Servers,
    primary_url: str,
    clean_replica: StreamingReplica,
    primary_conn: asyncpg.Connection,
    token: Any,
) -> None:
    """A job worker's change (its tenant event in the same transaction) reaches the gateway
    through the outbox relay, which records the tenant's position: the tenant's next reads
    do not come from a replica that has not replayed it, however far within the bound."""
    replica = clean_replica
    async with gateway(servers, primary_url, replica, max_lag_ms=60_000) as client:
        await until(lambda: served_by_replica(client, token("globex")), "reads on the replica")
        campaign = await primary_conn.fetchval(
            "SELECT id FROM campaigns WHERE tenant_id = $1 ORDER BY created_at LIMIT 1", GLOBEX
        )
        await replica.pause()
        name = f"by a worker {uuid.uuid4().hex[:8]}"
        engine = create_async_engine(primary_url)
        try:
            async with engine.begin() as conn:  # as a job worker writes: rule, row and event
                await campaigns.update_campaign(conn, GLOBEX, campaign, {"name": name})
        finally:
            await engine.dispose()

        async def shown() -> bool:
            return name in (await campaign_names(client, token("globex", "viewer"))).values()

        await until(shown, "the change shows though the replica replays nothing", timeout_s=3)


async def test_without_redis_reads_go_to_the_primary_until_it_is_back(
    primary_url: str,
    clean_replica: StreamingReplica,
    token: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis holds other gateway processes' writes: while it is away nobody can say whether
    a replica has them, so the reads go to the primary (one log line) and still answer."""
    replica = clean_replica
    caplog.set_level(logging.INFO, logger="switchboard.infra.replicas")
    valkey = DedicatedValkey()
    valkey.start()
    try:
        servers = Servers(database_url=primary_url, redis_url=valkey.url)
        async with gateway(servers, primary_url, replica, max_lag_ms=60_000) as client:
            await until(lambda: served_by_replica(client, token("globex")), "reads on the replica")
            expected = await campaign_names(client, token("globex"))

            await asyncio.to_thread(valkey.stop)
            unknown_before = reads("primary", "unknown_writes")
            for _ in range(5):
                assert await campaign_names(client, token("globex")) == expected
            assert reads("primary", "unknown_writes") > unknown_before
            lines = [
                r
                for r in caplog.records
                if "Redis unavailable for read-your-writes" in r.getMessage()
            ]
            assert len(lines) == 1, lines

            await asyncio.to_thread(valkey.start)
            await until(lambda: served_by_replica(client, token("globex")), "the replica again")
    finally:
        valkey.close()


async def test_another_gateway_process_reads_the_write_through_redis(
    servers: Servers,
    primary_url: str,
    clean_replica: StreamingReplica,
    token: Any,
) -> None:
    """Two gateways (as two processes of `serve`): a write through one is read at once
    through the other, which learns the tenant's position from Redis (their relays off, so
    that the reader cannot learn it from its own relay)."""
    replica = clean_replica
    async with (
        gateway(servers, primary_url, replica, max_lag_ms=60_000, relay=False) as writer,
        gateway(servers, primary_url, replica, max_lag_ms=60_000, relay=False) as reader,
    ):
        await until(lambda: served_by_replica(reader, token("acme")), "reads on the replica")
        await replica.pause()
        response = await writer.post(
            "/graphql",
            json={"query": CREATE, "variables": {"input": {"name": "Seen elsewhere"}}},
            headers={"authorization": f"Bearer {token('acme', 'marketer')}"},
        )
        created = response.json()["data"]["createCampaign"]["campaign"]["id"]
        own_writes_before = reads("primary", "own_write")
        seen = await campaign_names(reader, token("acme", "viewer"))
        assert seen.get(created) == "Seen elsewhere"
        assert reads("primary", "own_write") > own_writes_before
