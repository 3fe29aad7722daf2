"""What the mutations call after their transaction commits, and the worker's bookkeeping
between the database and the queue.

- `enqueue_activity`: one job per activity (the job's ID is the activity's), at its
  priority; False when dropped because a job with the same dedup key is waiting.
- `agent_status_changed`: PAUSED holds the agent's waiting jobs, IDLE (or any other
  status) lets them run, TERMINATED holds them for good and cancels them and their
  activities.
- `configure_agents`: the periodic re-sync of caps and statuses, which also cancels any
  stray job of a terminated agent.
- `reconcile`: QUEUED activities with no job in Redis (a crash between a commit and its
  enqueue, or a Redis that lost its data) get their jobs.
- `requeue_lost`: RUNNING activities whose jobs Redis lost while they ran (it came back
  without its data) are QUEUED again, with their jobs.
- `LateEnqueues`: a gateway process's enqueues that Redis refused after their commit (down,
  or failing over), enqueued again by that process as soon as Redis answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from taskiq.message import TaskiqMessage

from domain.store import agents as agent_store
from domain.store import runs
from switchboard.infra.db import Database
from switchboard.observability import jobs as observed
from tasks.broker import JobStore, broker
from tasks.config import JobSettings
from tasks.outage import REDIS, Outage, unreachable

log = logging.getLogger(__name__)

RUN_ACTIVITY = "switchboard.run_activity"
# Only activities QUEUED at least this long are reconciled: younger ones may be between
# their commit and their enqueue right now.
RECONCILE_MIN_AGE_S = 10
# A gateway process's refused enqueues: how long each is tried again, how many wait at
# once, and how many go to Redis at once when it answers again.
LATE_ENQUEUE_KEEP_S = 60.0
LATE_ENQUEUE_LIMIT = 10_000
LATE_ENQUEUE_CONCURRENCY = 8


def _store() -> JobStore:
    return broker.store


def activity_message(activity_id: uuid.UUID, tenant_id: uuid.UUID, priority: int) -> bytes:
    """The job's message. Its labels carry the current trace context (the job's span
    continues the enqueuing request's trace) and the priority."""
    return broker.encode(
        TaskiqMessage(
            task_id=activity_id.hex,
            task_name=RUN_ACTIVITY,
            labels={**observed.enqueue_labels(), "priority": priority},
            args=[],
            kwargs={"activity_id": str(activity_id), "tenant_id": str(tenant_id)},
        )
    )


async def enqueue_activity(
    redis: Redis,
    *,
    activity_id: uuid.UUID,
    tenant_id: uuid.UUID,
    agent_id: uuid.UUID,
    priority: int,
    dedup_key: str | None = None,
    created: dt.datetime | None = None,
) -> bool:
    """Queue the activity's job. False when it was dropped: a job with the same dedup key
    (`{tenantId}:{templateId}:{periodKey}`) is waiting. The dropped activity is cancelled
    by a worker (so the reconciler never brings it back). Enqueueing an activity whose job
    exists already changes nothing and answers True. `created`, for a job enqueued late
    (its first enqueue failed, or Redis lost it): the activity's creation, its place in its
    priority's FIFO (tasks/lua.py), ahead of the jobs enqueued since."""
    result = await _store().enqueue(
        redis,
        job_id=activity_id.hex,
        agent_id=agent_id.hex,
        tenant_id=tenant_id.hex,
        priority=priority,
        message=activity_message(activity_id, tenant_id, priority),
        dedup_key=dedup_key,
        place_ms=None if created is None else int(created.timestamp() * 1000),
    )
    return result >= 0


async def enqueue_rows(redis: Redis, rows: Sequence[Any], tenant_id: uuid.UUID) -> None:
    """Jobs for activity rows of ACTIVITY_COLUMNS (by name: id, agent_id, priority)."""
    for row in rows:
        await enqueue_activity(
            redis,
            activity_id=row["id"],
            tenant_id=tenant_id,
            agent_id=row["agent_id"],
            priority=row["priority"],
        )


async def agent_status_changed(
    redis: Redis,
    db: Database,
    *,
    tenant_id: uuid.UUID,
    agent_id: uuid.UUID,
    status: str,
    concurrency: int,
) -> None:
    """Tell the queue an agent's status (or cap) changed. PAUSED: its waiting jobs stay
    queued and none starts; IDLE and the rest: they run again, up to `concurrency` at once;
    TERMINATED: its waiting jobs are held for good, removed, and their activities CANCELLED
    (running ones stop at their next turn)."""
    store = _store()
    if status == "TERMINATED":
        # Held first: from here on no worker claims one of its jobs, whatever a concurrent
        # re-sync (configure_agents) read before the termination committed.
        await store.configure(
            redis, agent_id.hex, tenant_id.hex, concurrency, paused=True, terminated=True
        )
        await _cancel_terminated(redis, db, tenant_id, agent_id, always=True)
        return
    await store.configure(
        redis, agent_id.hex, tenant_id.hex, concurrency, paused=status == "PAUSED"
    )


async def configure_agents(
    redis: Redis, db: Database, agent_ids: Sequence[str] | None, settings: JobSettings
) -> int:
    """Load caps and PAUSED/TERMINATED state from the database into the queue: for the
    given agents (hex ids), or for every agent of the tenants this worker serves."""
    if agent_ids is not None:
        ids = [uuid.UUID(a) for a in agent_ids]
        rows = await agent_store.queue_settings(db, ids=ids)
        known = {r["id"] for r in rows}
        for missing in set(ids) - known:
            # No such agent: its jobs can never run; they end when their activity is not
            # found. A cap of 1 lets them drain.
            await _store().configure(redis, missing.hex, "", 1, paused=False)
    else:
        rows = await agent_store.queue_settings(db, tenants=settings.tenants or None)
    for row in rows:
        agent_id, tenant_id, status = row["id"], row["tenant_id"], row["status"]
        terminated = status == "TERMINATED"
        await _store().configure(
            redis,
            agent_id.hex,
            tenant_id.hex,
            row["concurrency"],
            paused=status == "PAUSED",
            terminated=terminated,
        )
        if terminated:
            # Stray jobs (enqueued after the termination, or a running job's retry) wait
            # held; they are removed here, with their activities.
            await _cancel_terminated(redis, db, tenant_id, agent_id, always=False)
    return len(rows)


async def _cancel_terminated(
    redis: Redis, db: Database, tenant_id: uuid.UUID, agent_id: uuid.UUID, *, always: bool
) -> None:
    """A terminated (so held) agent's waiting jobs removed, and its QUEUED activities
    CANCELLED: `always`, or only when it had waiting jobs (the periodic re-sync, which then
    writes nothing for the terminated agents that have none)."""
    removed = await _store().cancel_agent(redis, agent_id.hex)
    if removed or always:
        async with db.transaction() as conn:
            await runs.cancel_waiting(conn, tenant_id, agent_id)


async def reconcile(
    redis: Redis, db: Database, settings: JobSettings, min_age_s: float = RECONCILE_MIN_AGE_S
) -> int:
    """Enqueue QUEUED activities (older than `min_age_s`) that have no job in Redis, oldest
    first, each in its place in the queue (its creation); returns how many. A younger age is
    safe too (after an outage): an enqueue of a job that exists changes nothing, and a job
    whose activity has run already starts nothing (a first delivery starts only a QUEUED
    activity)."""
    await cancel_dropped(redis, db)
    rows = await runs.stranded(db, settings.tenants, min_age_s)
    enqueued = 0
    for start in range(0, len(rows), 500):
        batch = rows[start : start + 500]
        existing = await _store().existing(redis, [r["id"].hex for r in batch])
        for row in batch:
            if row["id"].hex in existing:
                continue
            enqueued += await enqueue_activity(
                redis,
                activity_id=row["id"],
                tenant_id=row["tenant_id"],
                agent_id=row["agent_id"],
                priority=row["priority"],
                created=row["created_at"],
            )
    if enqueued:
        log.info("reconciler: enqueued %d stranded activities", enqueued)
    return enqueued


async def cancel_dropped(redis: Redis, db: Database) -> int:
    """Activities whose jobs were dropped as duplicates are CANCELLED."""
    cancelled = 0
    while dropped := await _store().take_dropped(redis):
        async with db.transaction() as conn:
            cancelled += await runs.cancel_activities(
                conn, [uuid.UUID(j) for j in dropped], "DUPLICATE"
            )
    return cancelled


async def requeue_lost(redis: Redis, db: Database, jobs: Sequence[tuple[str, str]]) -> int:
    """The activities of these jobs (hex job and tenant ids), which Redis lost while they
    ran, go back from RUNNING to QUEUED and get their jobs again; returns how many."""
    requeued = []
    for job_id, tenant_hex in jobs:
        activity_id, tenant_id = uuid.UUID(job_id), uuid.UUID(tenant_hex)
        async with db.transaction() as conn:
            if await runs.requeue(conn, tenant_id, activity_id):
                requeued.append((activity_id, tenant_id, *await runs.job_of(conn, activity_id)))
    for activity_id, tenant_id, agent_id, priority, created in requeued:
        await enqueue_activity(
            redis,
            activity_id=activity_id,
            tenant_id=tenant_id,
            agent_id=agent_id,
            priority=priority,
            created=created,
        )
    if requeued:
        log.warning("queued again %d running activities whose jobs Redis lost", len(requeued))
    return len(requeued)


class LateEnqueues:
    """A gateway process's enqueues that Redis refused after their commit (unreachable, or
    a Sentinel failover under way). Each is tried again once Redis answers (one probe for
    them all, tasks/outage.py: every 0.25 s or less in an outage's first seconds, one log
    line when it starts and one when it ends), at its activity's creation as its place in
    the queue, so a mutation's job waits for Redis, not for a worker's reconciler. Enqueues
    are idempotent (the job's ID is the activity's) and a first delivery starts only a QUEUED
    activity, so trying again never runs a job twice. Bounded: what waits past
    `keep_s`, past `limit` at once, or when the process stops is the workers' reconciler's
    (an activity QUEUED without a job), as before."""

    def __init__(
        self,
        redis: Redis,
        *,
        keep_s: float = LATE_ENQUEUE_KEEP_S,
        limit: int = LATE_ENQUEUE_LIMIT,
        outage: Outage | None = None,
    ) -> None:
        self.redis = redis
        self.keep_s = keep_s
        self.limit = limit
        self.outage = outage or Outage(REDIS, redis.ping)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sending = asyncio.Semaphore(LATE_ENQUEUE_CONCURRENCY)
        self._over_limit = False  # logged once until the backlog is under it again
        self._failing = False  # a failure other than an outage: logged once until a success
        self.enqueued = 0  # jobs this process enqueued late

    @property
    def waiting(self) -> int:
        return len(self._tasks)

    def add(
        self,
        error: BaseException,
        *,
        activity_id: uuid.UUID,
        tenant_id: uuid.UUID,
        agent_id: uuid.UUID,
        priority: int,
        created: dt.datetime,
    ) -> None:
        """The activity's enqueue failed with `error`, which showed Redis unreachable
        (`tasks.outage.unreachable`; the caller leaves any other error to the reconciler):
        enqueue it once Redis answers. In the request's task: its job keeps the request's
        trace."""
        self.outage.failed(error, "enqueues")
        if len(self._tasks) >= self.limit:
            if not self._over_limit:
                self._over_limit = True
                log.warning(
                    "%d enqueues wait for Redis already; the workers' reconciler enqueues "
                    "the next ones",
                    len(self._tasks),
                )
            return
        self._over_limit = False
        job = {
            "activity_id": activity_id,
            "tenant_id": tenant_id,
            "agent_id": agent_id,
            "priority": priority,
            "created": created,
        }
        task = asyncio.create_task(self._enqueue(job), name=f"late-enqueue:{activity_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _enqueue(self, job: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(self._until_enqueued(job), self.keep_s)
        except TimeoutError:
            pass  # the reconciler's now
        except Exception as error:  # not an outage: the reconciler's too, said once a streak
            if not self._failing:
                self._failing = True
                log.warning(
                    "enqueue of activity %s failed again, not for an outage (%s: %s); "
                    "left to the workers' reconciler",
                    job["activity_id"],
                    type(error).__name__,
                    error,
                )

    async def _until_enqueued(self, job: dict[str, Any]) -> None:
        while True:
            await self.outage.wait()
            try:
                async with self._sending:
                    await enqueue_activity(self.redis, **job)
            except (RedisError, OSError) as error:
                if unreachable(error) != REDIS:
                    raise
                self.outage.failed(error)
                continue
            self.enqueued += 1
            self._failing = False
            return

    async def close(self) -> None:
        """Stop trying (the process is stopping): what still waits is the reconciler's."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if tasks:
            log.warning("left %d refused enqueues to the workers' reconciler", len(tasks))
        await self.outage.close()
