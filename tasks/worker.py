"""`switchboard worker`: one worker process.

On start it loads every agent's cap and PAUSED state into the queue, cancels activities
whose jobs were dropped as duplicates, and enqueues QUEUED activities that have no job
(the reconciler). Then Taskiq's receiver runs up to `worker_slots` jobs at once, asking the
broker for the next job only when a slot is free. Beside it:
- the lease heartbeat (in the broker);
- the scheduled jobs, every `expiry_interval_s` (60 s) in one worker at a time (a Redis
  lock): overdue approvals EXPIRED and escalated, the reconciler again, agents re-synced;
- a look every second for dropped duplicates to cancel.

Observability: tracing from the OTEL_* environment (`tracing.configure_from_env`), so each
job's span continues the enqueuing request's trace. Metrics (switchboard/observability/
jobs.py): under `switchboard serve` the worker writes them to PROMETHEUS_MULTIPROC_DIR and
the gateway's /metrics adds them up; a standalone `switchboard worker` serves them itself
on SWITCHBOARD_WORKER_METRICS_HOST:…_PORT (`JobSettings.metrics_port`) when that is set
(all processes' values when PROMETHEUS_MULTIPROC_DIR is set too).

SIGTERM / SIGINT: no new jobs; running ones get `shutdown_grace_s` to finish, then they are
handed back to the queue in their place (no attempt used) and start over elsewhere.

Outages (tasks/outage.py): PostgreSQL or Redis unreachable, at start or later, the worker
keeps running. Claims, heartbeats, maintenance passes and the steps of running jobs wait
for the server (probed with capped exponential backoff, often in an outage's first
seconds) and carry on once it answers; an outage is logged once when it starts and once
when it ends. The maintenance pass after a Redis outage runs the moment Redis answers.

Logs: JSON lines on stderr with secrets redacted (the JWT secret, the database and Redis
passwords), SWITCHBOARD_LOG_LEVEL and SWITCHBOARD_LOG_FORMAT as for the gateway
(switchboard/observability/logs.py); taskiq's own logger at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from redis.asyncio import Redis
from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver

from domain.store import runs
from switchboard.bootstrap import build_services
from switchboard.infra.db import Database
from switchboard.observability import logs, metrics, tracing
from switchboard.settings import Settings
from tasks import jobs  # noqa: F401  (registers the tasks and the retry middleware)
from tasks.broker import broker
from tasks.config import JobSettings
from tasks.outage import POSTGRES, REDIS, Outage, Outages
from tasks.queue import cancel_dropped, configure_agents, reconcile, requeue_lost

log = logging.getLogger(__name__)

SCHEDULER_LOCK = "lock:scheduled"
# After a Redis outage (or failover): reconcile every pass for this long, with this
# youngest age (seconds), so a job the outage lost waits seconds, not a scheduled interval.
RECONCILE_AFTER_OUTAGE_S = 10.0
RECONCILE_AFTER_OUTAGE_MIN_AGE_S = 1.0


async def run_scheduled(redis: Redis, db: Database, settings: JobSettings) -> int:
    """The every-minute job: expire overdue approvals, reconcile, re-sync agents. Returns
    how many approvals expired."""
    expired_total = 0
    while True:
        async with db.transaction() as conn:
            expired = await runs.expire_approvals(conn, list(settings.tenants or ()) or None)
        expired_total += len(expired)
        if len(expired) < 500:
            break
    if expired_total:
        log.info("expired %d overdue approvals", expired_total)
    await reconcile(redis, db, settings)
    await configure_agents(redis, db, None, settings)
    return expired_total


async def _maintenance(redis: Redis, db: Database, settings: JobSettings, outages: Outages) -> None:
    loop = asyncio.get_running_loop()
    next_scheduled = loop.time()
    lock_ms = max(int(settings.expiry_interval_s * 900), 100)
    # Workers serving the same tenants share one lock; a worker dedicated to some tenants
    # does not hold up the scheduled job of the others.
    scope = ",".join(sorted(t.hex for t in settings.tenants)) if settings.tenants else "all"
    lock_key = broker.store.key(f"{SCHEDULER_LOCK}:{hashlib.sha1(scope.encode()).hexdigest()[:12]}")
    redis_outages = outages.redis.ended
    reconcile_until = 0.0
    redis_was_down = False
    interval = min(1.0, settings.expiry_interval_s)
    pause = interval
    while True:
        await asyncio.sleep(pause)
        pause = interval
        redis_was_down = redis_was_down or outages.redis.down
        if outages.down:
            outages.skip("maintenance passes")
            # The next pass starts the moment both servers answer again, not at the next
            # tick: after a Redis outage it is the one that reconciles.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outages.back(), interval)
            pause = 0.0
            continue
        try:
            if redis_was_down or outages.redis.ended != redis_outages:
                # Redis may have come back without its data, or a failover promoted a
                # replica that missed the last writes: queued jobs get theirs again now
                # (as soon as Redis answers, not once the outage is confirmed over) rather
                # than at the next scheduled pass, each in its place in the queue (its
                # activity's creation), and for a few seconds more, for mutations whose
                # enqueue failed while their gateway had not reconnected.
                reconcile_until = loop.time() + RECONCILE_AFTER_OUTAGE_S
                redis_outages = outages.redis.ended
                redis_was_down = False
            if loop.time() < reconcile_until:
                await reconcile(redis, db, settings, min_age_s=RECONCILE_AFTER_OUTAGE_MIN_AGE_S)
            await cancel_dropped(redis, db)
            if settings.scheduler and loop.time() >= next_scheduled:
                next_scheduled = loop.time() + settings.expiry_interval_s
                # One worker at a time: the lock lasts most of an interval and is not
                # released, so the job runs about once per interval across the fleet.
                if await redis.set(lock_key, broker.worker_id, nx=True, px=lock_ms):
                    await run_scheduled(redis, db, settings)
        except Exception as error:
            if outages.failed(error, "maintenance passes") is None:
                log.exception("worker maintenance failed; trying again")


def _dump_tasks() -> None:
    """Log where each task waits (the whole await chain, not only its outer frame)."""
    for task in asyncio.all_tasks():
        lines, awaited = [], task.get_coro()
        while awaited is not None and len(lines) < 30:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            if frame is not None:
                lines.append(f"\n    {frame.f_code.co_filename}:{frame.f_lineno}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
        log.warning("task %s:%s", task.get_name(), "".join(lines))
    awaited = broker.listener
    lines = []
    while awaited is not None and len(lines) < 30:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is not None:
            lines.append(f"\n    {frame.f_code.co_filename}:{frame.f_lineno}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
    log.warning("broker listener:%s", "".join(lines))


async def run_worker(
    settings: Settings, job_settings: JobSettings, stop: asyncio.Event | None = None
) -> None:
    # The database, Redis and the queue, wired as for every process (switchboard/bootstrap.py);
    # the broker is connected to this Redis.
    infrastructure = build_services(settings, job_settings)
    db, redis = infrastructure.db, infrastructure.redis
    outages = Outages(
        Outage(POSTGRES, lambda: db.fetch("SELECT 1")),
        Outage(REDIS, redis.ping),
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    async def mark_stopping() -> None:
        await stop.wait()
        broker.stopping = True
        log.info("worker %s stopping", broker.worker_id)

    watcher = asyncio.create_task(mark_stopping(), name="stop-watcher")
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)  # what is this worker doing?

    broker.is_worker_process = True
    broker.outages = outages
    broker.state.db = db
    broker.state.redis = redis
    broker.state.jobs = job_settings

    async def configure(agent_ids: list[str]) -> None:
        await configure_agents(redis, db, agent_ids, job_settings)

    broker.configure_agents = configure

    async def requeue(lost: list[tuple[str, str]]) -> None:
        await outages.run("requeues", lambda: requeue_lost(redis, db, lost), outages.database)

    broker.requeue_lost = requeue
    await broker.startup()

    async def close() -> None:
        await broker.shutdown()
        await outages.close()
        await infrastructure.close()

    async def prepare() -> None:
        await outages.run("startup", lambda: configure_agents(redis, db, None, job_settings))
        await outages.run("startup", lambda: reconcile(redis, db, job_settings))

    # Servers unreachable at start: wait for them, unless told to stop meanwhile.
    preparing = asyncio.create_task(prepare(), name="startup")
    await asyncio.wait({preparing, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if not preparing.done():
        preparing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await preparing
        await close()
        log.info("worker %s stopped before it was ready", broker.worker_id)
        return
    preparing.result()
    maintenance = asyncio.create_task(
        _maintenance(redis, db, job_settings, outages), name="maintenance"
    )
    if job_settings.metrics_port is not None:
        metrics.serve_metrics(job_settings.metrics_port, job_settings.metrics_host)

    log.info(
        "worker %s ready: %d slots, lease %.1f s, tenants %s",
        broker.worker_id,
        job_settings.worker_slots,
        job_settings.lease_s,
        "all" if not job_settings.tenants else ",".join(str(t) for t in job_settings.tenants),
    )
    print(f"worker ready {broker.worker_id}", flush=True)
    with ThreadPoolExecutor(max_workers=1) as executor:
        receiver = Receiver(
            broker,
            executor=executor,
            max_async_tasks=job_settings.worker_slots,
            max_prefetch=0,
            run_startup=False,
            ack_type=AcknowledgeType.WHEN_EXECUTED,
            wait_tasks_timeout=job_settings.shutdown_grace_s,
        )
        try:
            await receiver.listen(stop)
        finally:
            running = [d.task for d in broker.held.values() if d.task is not None]
            released = await broker.release_all()
            if running:
                await asyncio.wait(running, timeout=5)
            if released:
                log.info("handed %d running jobs back to the queue", released)
            for task in (maintenance, watcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await close()
            metrics.process_exiting()
            tracing.flush()
            log.info("worker %s stopped", broker.worker_id)


def configure_logs(settings: Settings) -> None:
    """JSON lines (or text), secrets redacted, as every other process writes them."""
    logs.register_secret(settings.jwt_secret)
    logs.register_url_password(settings.database_url)
    logs.register_url_password(settings.redis_url)
    logs.register_secret(settings.redis_password)
    root = logging.getLogger()
    for handler in list(root.handlers):
        # `switchboard worker` may have installed a plain handler while parsing arguments:
        # this process writes its lines one way only.
        if not getattr(handler, "switchboard", False):
            root.removeHandler(handler)
    logs.configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("taskiq").setLevel(logging.WARNING)


def main(settings: Settings | None = None, job_settings: JobSettings | None = None) -> int:
    """`switchboard worker` (the settings' URLs point at the servers); `python -m
    tasks.worker` reads both settings from the environment."""
    settings = settings or Settings.from_env()
    job_settings = job_settings or JobSettings.from_env()
    configure_logs(settings)
    tracing.configure_from_env(otlp_inline=settings.otlp_inline)
    asyncio.run(run_worker(settings, job_settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
