"""The job queue's order on a real Redis (tasks/lua.py): strict priorities, FIFO within a
priority, and a job enqueued late (its enqueue was refused during an outage, or Redis lost
it) in its activity's place, ahead of the jobs enqueued since, not behind them; and the
reconciler enqueues a stranded activity in that place."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from switchboard.infra.db import Database, create_engine
from switchboard.settings import Settings
from tasks.broker import JobStore, broker
from tasks.config import JobSettings
from tasks.queue import enqueue_activity, reconcile
from tests.conftest import Servers
from tests.support.jobs import fresh_tenant, new_work

TENANT, AGENT = uuid.uuid4().hex, uuid.uuid4().hex


@pytest.fixture
async def store(redis: Redis) -> AsyncIterator[JobStore]:
    """A queue of the test's own (its own key prefix), its one agent configured."""
    queue = JobStore(prefix=f"test:q:{uuid.uuid4().hex[:8]}:")
    await queue.configure(redis, AGENT, TENANT, cap=100, paused=False)
    yield queue
    keys = [key async for key in redis.scan_iter(match=f"{queue.prefix}*", count=1000)]
    if keys:
        await redis.delete(*keys)


async def _enqueue(
    store: JobStore, redis: Redis, job: str, priority: int = 5, place: dt.datetime | None = None
) -> int:
    return await store.enqueue(
        redis,
        job_id=job,
        agent_id=AGENT,
        tenant_id=TENANT,
        priority=priority,
        message=job.encode(),
        place_ms=None if place is None else int(place.timestamp() * 1000),
    )


async def _claims(store: JobStore, redis: Redis, tenants: tuple[str, ...] = ()) -> list[str]:
    """Claim (and acknowledge) until the queue is empty: the jobs in the order they were
    handed out."""
    order = []
    while True:
        reply: list[Any] = await store.claim(redis, "test-worker", 60_000, tenants)
        if reply[0] != "job":
            assert reply[0] == "empty", reply
            return order
        order.append(reply[1])
        assert await store.ack(redis, reply[1], int(reply[3]))


async def test_a_late_job_goes_in_its_place_within_its_priority(
    store: JobStore, redis: Redis
) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    assert await _enqueue(store, redis, "first") == 1
    assert await _enqueue(store, redis, "second") == 1
    # Its activity was created before both, its enqueue refused: it goes ahead of them.
    assert await _enqueue(store, redis, "refused", place=before) == 1
    # A place past the queue's clock (another host's clock ahead): never behind the jobs
    # enqueued after it.
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert await _enqueue(store, redis, "skewed", place=ahead) == 1
    assert await _enqueue(store, redis, "third") == 1
    # Priorities stay strict: an old place does not lift a job over a more urgent one.
    assert await _enqueue(store, redis, "urgent", priority=3) == 1
    assert await _enqueue(store, redis, "late-and-lax", priority=7, place=before) == 1
    # Enqueued again (the reconciler and a late enqueue both), a job keeps its place once.
    assert await _enqueue(store, redis, "second", place=before) == 0
    assert await _enqueue(store, redis, "refused") == 0

    assert await _claims(store, redis) == [
        "urgent",
        "refused",
        "first",
        "second",
        "skewed",
        "third",
        "late-and-lax",
    ]


async def test_fifo_holds_for_jobs_enqueued_in_the_same_millisecond(
    store: JobStore, redis: Redis
) -> None:
    # Job names in the opposite order to their enqueues: ties broken by name would show.
    jobs = [f"burst-{n:03d}" for n in range(300, 0, -1)]
    for job in jobs:  # a local round trip is well under a millisecond: many share one
        assert await _enqueue(store, redis, job) == 1
    assert await _claims(store, redis) == jobs


async def test_the_reconciler_enqueues_a_stranded_activity_in_its_place(
    servers: Servers, settings: Settings, db_conn: asyncpg.Connection, redis: Redis
) -> None:
    """An activity whose enqueue was refused, then one enqueued normally: the reconciler's
    job for the first starts before the second's."""
    tenant = await fresh_tenant(servers.database_url, "reconcile-place")
    (stranded,) = await new_work(db_conn, tenant, "COPYWRITER")
    (enqueued,) = await new_work(db_conn, tenant, "COPYWRITER")
    agent = tenant.agent("COPYWRITER")
    await broker.store.configure(redis, agent.hex, tenant.id.hex, cap=10, paused=False)
    assert await enqueue_activity(
        redis, activity_id=enqueued, tenant_id=tenant.id, agent_id=agent, priority=5
    )
    db = Database(create_engine(settings, servers.database_url))
    try:
        jobs = JobSettings(tenants=(tenant.id,))
        assert await reconcile(redis, db, jobs, min_age_s=0) == 1
        assert await reconcile(redis, db, jobs, min_age_s=0) == 0  # it has its job now
    finally:
        await db.dispose()
    assert await _claims(broker.store, redis, (tenant.id.hex,)) == [stranded.hex, enqueued.hex]
