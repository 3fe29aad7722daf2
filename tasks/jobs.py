"""The Taskiq tasks the worker runs, and the middleware that retries or dead-letters them.

- `switchboard.run_activity`: one activity's run (tasks/runner.py).
- `switchboard.probe`: does nothing but note when it started (benchmarks, health checks).

Retries: a run that raises is tried again after `retry_base_s * 2^(n-1)` seconds (capped at
`retry_max_s`), half of it fixed and half random ("equal jitter"), up to `max_retries`
times (3); meanwhile the activity is QUEUED and the job waits in the delayed set. After the
last retry the job is dead-lettered: the activity FAILED with the error as its reason, the
agent ERROR, a new ESCALATED activity for a person with an ESCALATION_CREATED event, the
Redis dead-letter counter (fleet-wide, `JobStore.dead_letter_count`) and
`switchboard_job_dead_letters_total{task="run_activity", role}` up by one.

Metrics and traces (switchboard/observability/jobs.py): each run of `run_activity` is a
`job run_activity` span continuing the enqueuing request's trace (the message's labels
carry it, tasks/queue.py), and feeds `switchboard_job_wait_seconds{role, priority}` (from
the job becoming ready in Redis to its run), `switchboard_job_run_seconds{role, priority}`
and `switchboard_jobs_finished_total{role, priority, outcome}` (ok, retry, error,
cancelled).

Outages (tasks/outage.py): every database and Redis step of a run waits out an outage of
its server and carries on where it stopped, so an infrastructure error is not the job's
failure. Should one still end a run, the job goes back to its place in the queue once the
server is back, without using an attempt, and starts over; the activity is never FAILED
for it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from taskiq import Context, TaskiqDepends
from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult

from domain.store import runs
from switchboard.infra.db import Database
from switchboard.observability import jobs as observed
from tasks import runner
from tasks.broker import broker, now_ms
from tasks.config import JobSettings
from tasks.queue import RUN_ACTIVITY, enqueue_rows

log = logging.getLogger(__name__)
T = TypeVar("T")

PROBE = "switchboard.probe"
JOB_TASK = "run_activity"  # the `task` label of the job metrics and the span's name
# Taskiq injects the task's context through this default.
CONTEXT = TaskiqDepends()


def backoff_s(retry: int, settings: JobSettings, rng: random.Random | None = None) -> float:
    """The wait before retry number `retry` (1, 2, 3, …): exponential, with equal jitter."""
    ceiling = min(settings.retry_max_s, settings.retry_base_s * 2 ** (retry - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def _hold_current_task(context: Context) -> Any:
    held = broker.held.get(context.message.task_id)
    if held is not None:
        held.task = asyncio.current_task()
    return held


# Agent ID (hex) → role: an agent's role never changes, so one query per agent and process.
_roles: dict[str, str] = {}


async def agent_role(db: Database, agent_id: str | None) -> str:
    if not agent_id:
        return "none"
    role = _roles.get(agent_id)
    if role is None:
        rows = await db.fetch("SELECT role FROM agents WHERE id = :id", {"id": uuid.UUID(agent_id)})
        role = str(rows[0][0]) if rows else "none"
        if len(_roles) < 100_000:
            _roles[agent_id] = role
    return role


def database_steps() -> runner.Guard:
    """How a run's database steps ride out an outage (as they are, outside a worker)."""
    outages = broker.outages
    if outages is None:
        return runner.direct
    return functools.partial(outages.run, uses=outages.database)


async def _redis_step(what: str, call: Callable[[], Awaitable[T]]) -> T:
    outages = broker.outages
    if outages is None:
        return await call()
    return await outages.run(what, call, outages.redis)


def _job_labels(context: Context, held: Any) -> dict[str, Any]:
    """The message's labels (trace context, priority), the wait counted from the moment
    Redis made the job ready (its enqueue, or the end of a retry's backoff)."""
    labels = dict(context.message.labels)
    if held is not None and held.enqueued_ms > 0:
        labels[observed.ENQUEUED_AT] = str(held.enqueued_ms * 1_000_000)
    return labels


@broker.task(task_name=RUN_ACTIVITY)
async def run_activity(activity_id: str, tenant_id: str, context: Context = CONTEXT) -> str:
    held = _hold_current_task(context)
    if broker.is_worker_process and (held is None or held.lost):
        return "LOST"  # its lease ran out before the run began: it runs elsewhere, or later
    state = context.state
    tenant = uuid.UUID(tenant_id)
    steps = database_steps()

    async def enqueue(rows: list[Any], tenant_id: uuid.UUID) -> None:
        await _redis_step("enqueues", lambda: enqueue_rows(state.redis, rows, tenant_id))

    labels = _job_labels(context, held)
    agent_id = held.agent_id if held is not None else None
    role = await steps("run steps", lambda: agent_role(state.db, agent_id))
    run = observed.start(JOB_TASK, labels, role, labels.get("priority", "none"))
    run.attach()
    try:
        outcome = await runner.execute(
            state.db,
            state.jobs,
            uuid.UUID(activity_id),
            tenant,
            enqueue,
            restart=held is None or held.delivery > 1,
            steps=steps,
        )
    except asyncio.CancelledError:
        run.finish("cancelled")
        if held is not None and held.lost and not broker.stopping:
            # The worker gave the run up (its lease ran out or went to another worker):
            # this delivery just ends, settled by nobody here.
            return "LOST"
        raise
    except Exception as error:
        # What RetryMiddleware.on_error does next: a retry, or the dead letter.
        retry = held is not None and held.attempts < state.jobs.max_retries
        run.finish("retry" if retry else "error", error)
        raise
    run.finish("cancelled" if outcome.status == "CANCELLED" else "ok")
    log.info("activity %s: %s after %d turns", activity_id, outcome.status, outcome.turns)
    return outcome.status


@broker.task(task_name=PROBE)
async def probe(key: str, context: Context = CONTEXT) -> None:
    held = _hold_current_task(context)
    if held is not None:
        await context.state.redis.hset(
            key, held.job_id, f"{held.enqueued_ms},{held.claimed_ms},{now_ms()}"
        )


class RetryMiddleware(TaskiqMiddleware):
    """On a failed run: a delayed retry, or the dead letter after the last one."""

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        held = broker.held.get(message.task_id)
        if held is None or held.settled or message.task_name != RUN_ACTIVITY:
            return
        if isinstance(exception, asyncio.CancelledError):
            return  # the worker is stopping, or lost the lease: handed back elsewhere
        outages = broker.outages
        outage = outages.failed(exception, "runs") if outages is not None else None
        if outage is not None:
            # Not the job's failure: once the server is back the job goes back to its place
            # (no attempt used) and its next delivery starts the RUNNING activity over.
            await outage.wait()
            await broker.settle(held, "release")
            return
        state = self.broker.state
        settings: JobSettings = state.jobs
        activity_id = uuid.UUID(message.kwargs["activity_id"])
        tenant_id = uuid.UUID(message.kwargs["tenant_id"])
        reason = f"{type(exception).__name__}: {exception}"
        steps = database_steps()

        async def requeue() -> None:
            async with state.db.transaction() as conn:
                await runs.requeue(conn, tenant_id, activity_id)

        async def dead_letter(why: str) -> uuid.UUID | None:
            async with state.db.transaction() as conn:
                return await runs.dead_letter(conn, tenant_id, activity_id, why)

        try:
            if held.attempts < settings.max_retries:
                retry = held.attempts + 1
                delay = backoff_s(retry, settings)
                await steps("retries", requeue)
                await broker.settle(held, "retry", due_ms=now_ms() + int(delay * 1000))
                log.warning(
                    "activity %s failed (%s); retry %d/%d in %.2f s",
                    activity_id,
                    reason,
                    retry,
                    settings.max_retries,
                    delay,
                )
                return
            attempts = held.attempts + 1
            full_reason = f"{reason} (after {attempts} attempts)"
            escalation = await steps("dead letters", lambda: dead_letter(full_reason))
            await broker.settle(
                held,
                "dead",
                record={
                    "job": held.job_id,
                    "tenant": held.tenant_id,
                    "agent": held.agent_id,
                    "reason": full_reason,
                    "at": now_ms(),
                    "escalation": escalation.hex if escalation else None,
                },
            )
            role = await steps("dead letters", lambda: agent_role(state.db, held.agent_id))
            observed.dead_lettered(JOB_TASK, role, reason)
            log.error("activity %s dead-lettered: %s", activity_id, full_reason)
        except Exception:
            # Could not record the failure (not for an outage: the steps above wait those
            # out): hand the job back; it runs again.
            log.exception("could not retry or dead-letter activity %s", activity_id)
            await broker.settle(held, "release")


broker.add_middlewares(RetryMiddleware())
