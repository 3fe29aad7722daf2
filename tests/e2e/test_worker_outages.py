"""The job worker rides out outages: real worker processes (`python -m tasks.worker`), real
servers restarted under them (dedicated ones, tests/support/faults.py, so the session's
shared servers never go down), observed from outside through the database, Redis and the
workers' JSON logs.

- Redis restarted under two workers: both keep running, each logs one line when the outage
  starts and one when it ends (fewer than 10 in all), the job that was running when its
  lease could not be renewed is given up by its worker and runs once afterwards, and a job
  dispatched after the restart completes once.
- PostgreSQL restarted (`pg_ctl stop -m fast`) while a job runs: the run waits and carries
  on, the job finishes once, the activity is never FAILED and no retry is spent, no LLM
  call is repeated beyond the turn that was cut, and a job dispatched during the outage is
  claimed once the database is back.
- A worker SIGKILLed mid-job while a second one is running: the second takes the job over
  once the lease ran out and it finishes once.

Recovery times (from the server back to the job's claim, its `dispatchedAt`) are printed
(`pytest -s`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tasks.broker import JobStore
from tests.conftest import Servers
from tests.support.faults import DedicatedPostgres, DedicatedValkey
from tests.support.jobs import Tenant, Worker, enqueue, fresh_tenant, new_work, wait_for

STORE = JobStore()
# A run long enough to be cut in the middle: 2 turns of 20 tokens, 100 ms a token.
SLOW_RUN = {"SWITCHBOARD_SIM_TOKEN_DELAY_MS": 100, "SWITCHBOARD_SIM_TOKENS_PER_TURN": 20}


@pytest.fixture
def valkey() -> Iterator[DedicatedValkey]:
    server = DedicatedValkey()
    server.start()
    yield server
    server.close()


@pytest.fixture
def postgres() -> Iterator[DedicatedPostgres]:
    server = DedicatedPostgres()
    yield server
    server.close()


@pytest.fixture
def workers() -> Iterator[Any]:
    """start(database_url, redis_url, tenant, **env) → a running Worker; stopped after."""
    started: list[Worker] = []

    def start(database_url: str, redis_url: str, tenant: Tenant, **env: object) -> Worker:
        worker = Worker(database_url, redis_url, [tenant], **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
async def db_of() -> AsyncIterator[Any]:
    """db_of(url) → an asyncpg connection to that database (closed after the test)."""
    opened: list[asyncpg.Connection] = []

    async def connect(database_url: str) -> asyncpg.Connection:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        if not conn.is_closed():
            await conn.close()


def _redis(url: str) -> Redis:
    # One retry: the test's own client reconnects once after the server restarted.
    return Redis.from_url(url, retry=Retry(NoBackoff(), 1))


def _log_lines(worker: Worker, after: int = 0) -> list[str]:
    """The worker's output lines from line `after` on, except the "worker ready" marker."""
    lines = worker.output().splitlines()[after:]
    return [line for line in lines if line.strip() and not line.startswith("worker ready")]


def _messages(lines: list[str]) -> list[str]:
    return [orjson.loads(line)["message"] for line in lines]


def _logged_at(workers: list[Worker], text: str) -> dt.datetime:
    """When the (one) line containing `text` was logged."""
    (line,) = [line for w in workers for line in _log_lines(w) if text in line]
    return dt.datetime.fromisoformat(orjson.loads(line)["time"])


async def _logged(worker: Worker, text: str) -> bool:
    return any(text in line for line in _log_lines(worker))


async def _streaming(db: asyncpg.Connection, activity: uuid.UUID) -> bool:
    row = await db.fetchrow("SELECT status, first_token_at FROM activities WHERE id = $1", activity)
    return row["status"] == "RUNNING" and row["first_token_at"] is not None


async def _finished(db: asyncpg.Connection, ids: list[uuid.UUID]) -> bool:
    rows = await db.fetch("SELECT status FROM activities WHERE id = ANY($1::uuid[])", ids)
    return len(rows) == len(ids) and all(r["status"] == "AWAITING_APPROVAL" for r in rows)


async def _done_once(db: asyncpg.Connection, activity: uuid.UUID) -> asyncpg.Record:
    """The activity's end as one run made it: one approval, one copy of the text."""
    row = await db.fetchrow(
        "SELECT a.status, a.output, a.failure_reason, a.dispatched_at, "
        "(SELECT count(*) FROM approvals WHERE activity_id = a.id) AS approvals, "
        "(SELECT count(*) FROM llm_calls WHERE activity_id = a.id) AS calls, "
        "(SELECT count(*) FROM activities e WHERE e.revision_of = a.id) AS escalations "
        "FROM activities a WHERE a.id = $1",
        activity,
    )
    assert row["status"] == "AWAITING_APPROVAL" and row["approvals"] == 1
    # Two runs at once would have interleaved their text; a restarted run cleared it first.
    assert row["output"].count("Draft of the") == 1, row["output"]
    assert row["escalations"] == 0
    return row


def _since(moment: dt.datetime, later: dt.datetime) -> float:
    return (later - moment).total_seconds()


# Redis


async def test_a_redis_restart_under_running_workers(
    servers: Servers, db_conn: asyncpg.Connection, valkey: DedicatedValkey, workers: Any
) -> None:
    tenant = await fresh_tenant(servers.database_url, "redis-out")
    in_flight, after = await new_work(db_conn, tenant, "COPYWRITER", count=2)
    env = {"SWITCHBOARD_JOB_LEASE_S": 2, **SLOW_RUN}
    pool = [workers(servers.database_url, valkey.url, tenant, **env) for _ in range(2)]
    for worker in pool:
        await worker.ready()
    redis = _redis(valkey.url)
    try:
        assert await enqueue(redis, tenant, "COPYWRITER", in_flight, 5)
        await wait_for(lambda: _streaming(db_conn, in_flight), 20, interval=0.01)
        before = [len(w.output().splitlines()) for w in pool]

        await asyncio.to_thread(valkey.stop)
        # Down until the worker running the job gave it up: its lease could not be renewed.
        gave_up = f"could not renew the lease of job {in_flight.hex}"

        async def given_up() -> bool:
            return any([await _logged(w, gave_up) for w in pool])

        await wait_for(given_up, 20)
        await asyncio.to_thread(valkey.start)
        back = valkey.ready_at()
        assert await enqueue(redis, tenant, "COPYWRITER", after, 5)
        await wait_for(lambda: _finished(db_conn, [in_flight, after]), 30)
        for worker in pool:
            await wait_for(lambda w=worker: _logged(w, "Redis reachable again"), 15)
    finally:
        await redis.aclose()

    rerun = await _done_once(db_conn, in_flight)
    await _done_once(db_conn, after)
    # Never twice at once: its first run was stopped before its next delivery started.
    assert _logged_at(pool, gave_up) < rerun["dispatched_at"]
    finished = [m for w in pool for m in _messages(_log_lines(w))]
    assert sum(m.startswith(f"activity {in_flight}:") for m in finished) == 1
    assert sum(m.startswith(f"activity {after}:") for m in finished) == 1
    for worker, start in zip(pool, before, strict=True):
        assert worker.process.poll() is None, worker.output()
        lines = _log_lines(worker, start)
        messages = _messages(lines)  # every line is a JSON log line
        assert len(lines) < 10, lines
        assert sum(m.startswith("Redis unreachable") for m in messages) == 1
        assert sum(m.startswith("Redis reachable again") for m in messages) == 1
    rows = await db_conn.fetch(
        "SELECT id, dispatched_at FROM activities WHERE id = ANY($1::uuid[])", [in_flight, after]
    )
    claimed = {r["id"]: _since(back, r["dispatched_at"]) for r in rows}
    print(
        f"\nRedis back → in-flight job claimed again after {claimed[in_flight]:.2f} s, "
        f"new job claimed after {claimed[after]:.2f} s"
    )


async def test_a_redis_that_comes_back_without_its_data(
    servers: Servers, db_conn: asyncpg.Connection, valkey: DedicatedValkey, workers: Any
) -> None:
    """Redis killed and back empty while a job runs: the worker finds the job gone, stops
    its run and queues the activity again, and it runs once to the end."""
    tenant = await fresh_tenant(servers.database_url, "redis-lost")
    (running,) = await new_work(db_conn, tenant, "COPYWRITER")
    worker = workers(servers.database_url, valkey.url, tenant, **SLOW_RUN)
    await worker.ready()
    redis = _redis(valkey.url)
    try:
        assert await enqueue(redis, tenant, "COPYWRITER", running, 5)
        await wait_for(lambda: _streaming(db_conn, running), 20, interval=0.01)
        first_run = await db_conn.fetchval(
            "SELECT dispatched_at FROM activities WHERE id = $1", running
        )
        before = len(worker.output().splitlines())
        await asyncio.to_thread(valkey.crash)
        await wait_for(lambda: _logged(worker, "Redis unreachable"), 20)
        await asyncio.to_thread(valkey.start)
        back = valkey.ready_at()
        await wait_for(lambda: _finished(db_conn, [running]), 30)
        await wait_for(lambda: _logged(worker, "Redis reachable again"), 15)
    finally:
        await redis.aclose()

    row = await _done_once(db_conn, running)
    assert row["dispatched_at"] > first_run  # started over, once
    assert worker.process.poll() is None, worker.output()
    lines = _log_lines(worker, before)
    messages = _messages(lines)
    assert len(lines) < 10, lines
    assert sum(m.startswith("Redis unreachable") for m in messages) == 1
    assert sum(m.startswith("Redis reachable again") for m in messages) == 1
    assert "queued again 1 running activities whose jobs Redis lost" in messages
    assert sum(m.startswith(f"activity {running}:") for m in messages) == 1
    print(
        f"\nRedis back empty → lost job claimed again after "
        f"{_since(back, row['dispatched_at']):.2f} s"
    )


async def test_a_job_whose_enqueue_redis_refused_runs_once_it_is_back(
    servers: Servers, db_conn: asyncpg.Connection, valkey: DedicatedValkey, workers: Any
) -> None:
    """An activity committed while Redis is down, its enqueue refused and not tried again
    by its client: the worker enqueues it when Redis answers (in its place in the queue)
    and it runs once. The scheduled reconciler is kept out of it (its interval is an hour
    and it takes only activities QUEUED for 10 s): what runs it is the pass after the
    outage."""
    tenant = await fresh_tenant(servers.database_url, "redis-refused")
    worker = workers(
        servers.database_url,
        valkey.url,
        tenant,
        SWITCHBOARD_APPROVAL_EXPIRY_INTERVAL_S=3600,
    )
    await worker.ready()
    redis = _redis(valkey.url)
    try:
        await asyncio.to_thread(valkey.stop)
        await wait_for(lambda: _logged(worker, "Redis unreachable"), 20)
        (refused,) = await new_work(db_conn, tenant, "COPYWRITER")
        with pytest.raises(RedisError):
            await enqueue(redis, tenant, "COPYWRITER", refused, 5)
        await asyncio.to_thread(valkey.start)
        await wait_for(lambda: _finished(db_conn, [refused]), 30)
    finally:
        await redis.aclose()
    await _done_once(db_conn, refused)
    messages = _messages(_log_lines(worker))
    assert sum(m.startswith(f"activity {refused}:") for m in messages) == 1
    assert "reconciler: enqueued 1 stranded activities" in messages


# PostgreSQL


async def test_a_postgres_restart_under_a_running_job(
    servers: Servers, postgres: DedicatedPostgres, db_of: Any, workers: Any
) -> None:
    database_url = await postgres.database()
    tenant = await fresh_tenant(database_url, "pg-out")
    db = await db_of(database_url)
    running, waiting = await new_work(db, tenant, "COPYWRITER", count=2)
    worker = workers(database_url, servers.redis_url, tenant, **SLOW_RUN)
    await worker.ready()
    redis = _redis(servers.redis_url)
    try:
        assert await enqueue(redis, tenant, "COPYWRITER", running, 5)
        await wait_for(lambda: _streaming(db, running), 20, interval=0.01)
        before = len(worker.output().splitlines())

        await asyncio.to_thread(postgres.stop)
        await wait_for(lambda: _logged(worker, "PostgreSQL unreachable"), 20)
        # Dispatched while the database is down: claimed only once it is back.
        assert await enqueue(redis, tenant, "COPYWRITER", waiting, 5)
        # Down until the worker renewed the paused run's lease twice more (the job stays
        # its own) without claiming the new job, whose run could not start.
        leases: set[float] = set()

        async def renewed_twice() -> bool:
            leases.add(await redis.zscore(STORE.key("leases"), running.hex))
            return len(leases) >= 3

        await wait_for(renewed_twice, 20)
        assert await redis.hget(STORE.key(f"j:{waiting.hex}"), "state") == b"ready"
        await asyncio.to_thread(postgres.start)
        back = postgres.ready_at()
        db = await db_of(database_url)
        await wait_for(lambda: _finished(db, [running, waiting]), 30)
        await wait_for(lambda: _logged(worker, "PostgreSQL reachable again"), 15)
    finally:
        await redis.aclose()

    cut = await _done_once(db, running)
    fresh = await _done_once(db, waiting)
    # Never FAILED (a terminal state it could not have left), no attempt spent on a retry.
    assert cut["failure_reason"] is None and fresh["failure_reason"] is None
    assert await db.fetchval(
        "SELECT status FROM agents WHERE id = $1", tenant.agent("COPYWRITER")
    ) in ("IDLE", "RUNNING")
    assert worker.process.poll() is None, worker.output()
    lines = _log_lines(worker, before)
    messages = _messages(lines)
    assert len(lines) < 10, lines
    assert sum(m.startswith("PostgreSQL unreachable") for m in messages) == 1
    assert sum(m.startswith("PostgreSQL reachable again") for m in messages) == 1
    assert not any("retry" in m or "could not" in m for m in messages), messages
    # The cut run carried on where it stopped: no LLM call beyond its turns, but for at most
    # the one turn the outage cut.
    turns = next(
        int(m.rsplit(" after ", 1)[1].split()[0])
        for m in messages
        if m.startswith(f"activity {running}:")
    )
    assert turns <= cut["calls"] <= turns + 1, cut["calls"]
    print(
        f"\nPostgreSQL back → job dispatched during the outage claimed after "
        f"{_since(back, fresh['dispatched_at']):.2f} s"
    )


# A killed worker


async def test_a_second_worker_takes_over_the_job_of_a_killed_one_once(
    servers: Servers, db_conn: asyncpg.Connection, workers: Any
) -> None:
    tenant = await fresh_tenant(servers.database_url, "takeover")
    (activity,) = await new_work(db_conn, tenant, "COPYWRITER")
    env = {"SWITCHBOARD_JOB_LEASE_S": 2, **SLOW_RUN}
    # The doomed worker's run streams for a minute, so it cannot finish before the kill
    # however long the survivor takes to start on a busy machine.
    doomed = workers(
        servers.database_url,
        servers.redis_url,
        tenant,
        **{**env, "SWITCHBOARD_SIM_TOKEN_DELAY_MS": 3000},
    )
    await doomed.ready()
    redis = _redis(servers.redis_url)
    try:
        assert await enqueue(redis, tenant, "COPYWRITER", activity, 5)
        await wait_for(lambda: _streaming(db_conn, activity), 20, interval=0.01)
        first_run = await db_conn.fetchval(
            "SELECT dispatched_at FROM activities WHERE id = $1", activity
        )
        survivor = workers(servers.database_url, servers.redis_url, tenant, **env)
        await survivor.ready()
        assert (
            await db_conn.fetchval("SELECT dispatched_at FROM activities WHERE id = $1", activity)
            == first_run
        )  # still the first worker's run
        doomed.kill()  # SIGKILL: its lease is left to run out
        killed = dt.datetime.now(dt.UTC)
        await wait_for(lambda: _finished(db_conn, [activity]), 30)
    finally:
        await redis.aclose()

    row = await _done_once(db_conn, activity)
    assert row["dispatched_at"] > killed  # the survivor's run, started over after the kill
    finished = [m for m in _messages(_log_lines(survivor)) if m.startswith(f"activity {activity}:")]
    assert len(finished) == 1 and "AWAITING_APPROVAL" in finished[0], finished
    print(f"\nworker killed → job taken over after {_since(killed, row['dispatched_at']):.2f} s")
