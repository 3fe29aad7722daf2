"""A failover under load loses nothing: a Valkey primary, a replica and three Sentinels of
the test's own (tests/support/sentinel.py), a gateway process and a worker process that know
only REDIS_SENTINELS and REDIS_SENTINEL_SERVICE, and the primary SIGKILLed in the middle of
a burst of enqueues while a websocket client follows the tenant's events.

Afterwards every job ran exactly once (one RUNNING per activity in its outbox, every
activity AWAITING_APPROVAL), and the client got every ACTIVITY_STATUS_CHANGED event of the
outbox exactly once, with positions only moving forward; the outbox drains, and the
gateway answers ready again with Redis reachable, by itself.

The processes run on a database of the test's own: every relay reading an outbox publishes
what it takes to its own Redis, and the session's in-process gateway (the `app` fixture,
alive once any earlier test of the run used it) relays to the session's Redis, not this
cluster; on the shared test database it took the rows the failover test's gateway could not
publish while the primary was away, and the subscriber never saw them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from switchboard.edge.auth import issue_token
from switchboard.infra.migrate import upgrade_to_head_async
from switchboard.infra.redis import redis_client
from switchboard.settings import Settings
from tests.conftest import Servers, _drop_database, _fresh_database, _libpq, tenant_gid, user_gid
from tests.support.jobs import Worker, enqueue, fresh_tenant, new_work, starts, wait_for
from tests.support.live import TENANT_EVENTS, GatewayProcess, LiveClient
from tests.support.sentinel import SentinelCluster

JOBS = 40
KILL_AFTER = 20  # enqueues before the primary is killed


@pytest.fixture
def cluster() -> Iterator[SentinelCluster]:
    running = SentinelCluster().start()
    yield running
    running.close()


@pytest.fixture
async def database(servers: Servers) -> AsyncIterator[str]:
    """A migrated database that only this test's processes use (module docstring)."""
    name = f"switchboard_sentinel_{os.getpid()}"
    url = await _fresh_database(servers.direct, name)
    try:
        await upgrade_to_head_async(url)
        yield url
    finally:
        await _drop_database(servers.direct, name)


@pytest.fixture
async def db_conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    """conftest's `db_conn`, on this test's database."""
    conn = await asyncpg.connect(_libpq(database))
    yield conn
    await conn.close()


def _position(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


async def test_a_failover_under_load_loses_and_doubles_nothing(
    database: str,
    settings: Settings,
    db_conn: asyncpg.Connection,
    cluster: SentinelCluster,
    tmp_path: Path,
) -> None:
    tenant = await fresh_tenant(database, "sentinel")
    env = cluster.env()
    sentinel_settings = Settings.from_env(env)
    token = issue_token(
        settings, user_gid(tenant.slug, "marketer"), tenant_gid(tenant.slug), "dashboard"
    )
    gateway = GatewayProcess(
        database, "", tmp_path / "gateway.log", SWITCHBOARD_READINESS_CACHE_S="0", **env
    )
    worker = Worker(database, "", [tenant], **env)
    redis = redis_client(sentinel_settings, socket_timeout=1, socket_connect_timeout=1)
    received: list[tuple[str, str]] = []  # (event id, activity id)
    try:
        await asyncio.gather(gateway.ready(), worker.ready())
        async with LiveClient.connect(gateway.url, token) as client:
            # From the start of the tenant's log (a fresh tenant's is empty): no event is
            # missed however late the subscription starts.
            await client.subscribe(
                "s", TENANT_EVENTS, {"types": ["ACTIVITY_STATUS_CHANGED"], "after": "0-0"}
            )
            # Created now, so that only the burst enqueues them (the reconciler takes
            # QUEUED activities older than 10 s).
            ids = await new_work(db_conn, tenant, "COPYWRITER", count=JOBS)

            async def listen() -> None:
                while True:
                    _, data = await client.next_data(timeout=120)
                    event = data["tenantEvents"]
                    received.append((event["id"], event["activity"]["id"]))

            listener = asyncio.create_task(listen())
            killed = None
            for n, activity in enumerate(ids):
                if n == KILL_AFTER:
                    killed = await asyncio.to_thread(cluster.kill_primary)
                # An enqueue the failover refuses is left to the reconciler, as a mutation's
                # enqueue after its commit is.
                with contextlib.suppress(Exception):
                    await enqueue(redis, tenant, "COPYWRITER", activity, 5)
            assert killed is not None
            await asyncio.to_thread(cluster.wait_for_failover, killed)

            async def all_done() -> bool:
                rows = await db_conn.fetch(
                    "SELECT status FROM activities WHERE id = ANY($1::uuid[])", ids
                )
                return all(r["status"] == "AWAITING_APPROVAL" for r in rows)

            await wait_for(all_done, timeout=90, interval=0.2)

            async def outbox() -> list[uuid.UUID]:
                rows = await db_conn.fetch(
                    "SELECT activity_id FROM tenant_events WHERE tenant_id = $1 "
                    "AND type = 'ACTIVITY_STATUS_CHANGED' ORDER BY id",
                    tenant.id,
                )
                return [r["activity_id"] for r in rows]

            async def delivered_all() -> bool:
                return len(received) >= len(await outbox())

            try:
                await wait_for(delivered_all, timeout=60, interval=0.1)
            except AssertionError:
                closed = listener.exception() if listener.done() else None
                raise AssertionError(
                    f"{len(received)} of {len(await outbox())} events; client: {closed!r}"
                ) from None

            # And the relay keeps up after the failover: the outbox drains (a relay whose
            # passes kept failing would republish its oldest rows ahead of newer ones).
            async def drained() -> bool:
                return not await db_conn.fetchval(
                    "SELECT count(*) FROM tenant_events WHERE tenant_id = $1 AND NOT relayed",
                    tenant.id,
                )

            await wait_for(drained, timeout=30, interval=0.1)

            # The gateway found the new primary by itself: ready, Redis answering.
            async def ready() -> bool:
                async with httpx.AsyncClient() as http:
                    answer = await http.get(f"http://127.0.0.1:{gateway.port}/readyz")
                return answer.status_code == 200 and answer.json()["checks"]["redis"]["ok"]

            await wait_for(ready, timeout=30, interval=0.2)
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            expected = await outbox()
    finally:
        await redis.aclose()
        gateway.stop()
        worker.stop()

    # Every job ran exactly once: one RUNNING status per activity in its stream's outbox.
    assert await starts(db_conn, ids) == dict.fromkeys(ids, 1)
    # Every event of the outbox reached the client exactly once (as many per activity as
    # its rows), in the log's order: positions strictly rising. (Rows commit in their own
    # order, not their ids', so the outbox's id order is no order a client could see.)
    positions = [_position(event_id) for event_id, _ in received]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    got = [uuid.UUID(_activity_uuid(gid)) for _, gid in received]
    assert Counter(got) == Counter(expected) and len(got) == len(expected)


def _activity_uuid(global_id: str) -> str:
    # `act_<uuid hex>` (README, API notes)
    return global_id.split("_", 1)[1]
