"""A Taskiq broker on Redis with strict priorities, per-agent concurrency caps, leases,
deduplication and delayed retries (taskiq-redis's brokers have none of the first two).

Each step of a job (enqueue, claim, heartbeat, ack, retry, dead letter, release) is one
atomic Lua script in tasks/lua.py. docs/architecture.md ("A job") draws how a job moves and
why: scores by priority then sequence, claims only with a free slot, numbered deliveries
under renewed leases, and how outages are ridden out (tasks/outage.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError
from taskiq.abc.broker import AsyncBroker
from taskiq.acks import AckableMessage
from taskiq.message import BrokerMessage, TaskiqMessage

from tasks import lua
from tasks.config import JobSettings
from tasks.outage import Outages

log = logging.getLogger(__name__)


class _Script:
    """One Lua script, run by its SHA (loaded on first use on each server)."""

    def __init__(self, body: str) -> None:
        self.body = lua.COMMON + body
        self.sha = hashlib.sha1(self.body.encode()).hexdigest()

    async def __call__(self, redis: Redis, *args: Any) -> Any:
        try:
            return await redis.evalsha(self.sha, 0, *args)
        except NoScriptError:
            return await redis.eval(self.body, 0, *args)


ENQUEUE = _Script(lua.ENQUEUE)
CLAIM = _Script(lua.CLAIM)
ACK = _Script(lua.ACK)
RETRY = _Script(lua.RETRY)
DEAD = _Script(lua.DEAD)
RELEASE = _Script(lua.RELEASE)
HEARTBEAT = _Script(lua.HEARTBEAT)
CONFIGURE = _Script(lua.CONFIGURE)
CANCEL_AGENT = _Script(lua.CANCEL_AGENT)


def now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class JobStore:
    """The queue's operations on one Redis; usable without a running broker (the gateway
    enqueues through it)."""

    def __init__(self, prefix: str = "sb:q:") -> None:
        self.prefix = prefix

    def key(self, name: str) -> str:
        return self.prefix + name

    async def enqueue(
        self,
        redis: Redis,
        *,
        job_id: str,
        agent_id: str,
        tenant_id: str,
        priority: int,
        message: bytes,
        dedup_key: str | None = None,
        place_ms: int | None = None,
    ) -> int:
        """1: enqueued; 0: this job exists already; -1: dropped (its dedup key waits).
        `place_ms`: a job enqueued late takes its place in its priority's FIFO as if it had
        been enqueued then (epoch ms; its activity's creation), ahead of jobs enqueued since."""
        if not 1 <= priority <= 10:
            raise ValueError(f"priority must be 1..10, got {priority}")
        return int(
            await ENQUEUE(
                redis,
                self.prefix,
                job_id,
                agent_id,
                tenant_id,
                priority,
                message,
                dedup_key or "",
                now_ms(),
                "" if place_ms is None else place_ms,
            )
        )

    async def claim(
        self, redis: Redis, worker: str, lease_ms: int, tenants: tuple[str, ...] = ()
    ) -> list[Any]:
        reply = await CLAIM(redis, self.prefix, now_ms(), worker, lease_ms, len(tenants), *tenants)
        is_job = reply[0] == b"job"
        # A job's message (third item) stays bytes.
        return [v if is_job and i == 2 else _text(v) for i, v in enumerate(reply)]

    async def ack(self, redis: Redis, job_id: str, delivery: int) -> bool:
        return bool(await ACK(redis, self.prefix, job_id, delivery))

    async def retry(self, redis: Redis, job_id: str, delivery: int, due_ms: int) -> int:
        return int(await RETRY(redis, self.prefix, job_id, delivery, due_ms))

    async def dead(self, redis: Redis, job_id: str, delivery: int, record: dict[str, Any]) -> bool:
        return bool(await DEAD(redis, self.prefix, job_id, delivery, orjson.dumps(record)))

    async def release(self, redis: Redis, job_id: str, delivery: int) -> bool:
        return bool(await RELEASE(redis, self.prefix, job_id, delivery))

    async def heartbeat(self, redis: Redis, lease_ms: int, held: dict[str, int]) -> list[str]:
        if not held:
            return []
        args: list[Any] = []
        for job_id, delivery in held.items():
            args += [job_id, delivery]
        return [_text(j) for j in await HEARTBEAT(redis, self.prefix, now_ms() + lease_ms, *args)]

    async def configure(
        self,
        redis: Redis,
        agent_id: str,
        tenant_id: str,
        cap: int,
        paused: bool,
        terminated: bool = False,
    ) -> None:
        """The agent's cap and whether its jobs wait; a terminated agent's wait for good."""
        held = 2 if terminated else int(paused)
        await CONFIGURE(redis, self.prefix, agent_id, tenant_id, max(cap, 1), held)

    async def cancel_agent(self, redis: Redis, agent_id: str) -> list[str]:
        return [_text(j) for j in await CANCEL_AGENT(redis, self.prefix, agent_id)]

    async def existing(self, redis: Redis, job_ids: list[str]) -> set[str]:
        """Which of these jobs Redis holds (in any state)."""
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.exists(self.key(f"j:{job_id}"))
            found = await pipe.execute()
        return {job_id for job_id, hit in zip(job_ids, found, strict=True) if hit}

    async def take_dropped(self, redis: Redis, count: int = 500) -> list[str]:
        return [_text(j) for j in await redis.spop(self.key("dropped"), count) or []]

    async def dead_letter_count(self, redis: Redis) -> int:
        return int(await redis.get(self.key("dead_letters")) or 0)

    async def stats(self, redis: Redis) -> dict[str, int]:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.key("eligible"))
            pipe.zcard(self.key("leases"))
            pipe.zcard(self.key("delayed"))
            pipe.get(self.key("dead_letters"))
            eligible, running, delayed, dead = await pipe.execute()
        return {
            "eligible_agents": eligible,
            "running": running,
            "delayed": delayed,
            "dead_letters": int(dead or 0),
        }


@dataclass
class Delivery:
    """A job this worker holds: which delivery of it, and what it knows of it."""

    job_id: str
    delivery: int
    attempts: int
    agent_id: str
    tenant_id: str
    enqueued_ms: int
    claimed_ms: int
    # Until when (time.monotonic()) the lease is surely ours: the claim's or the last
    # renewal's sending time plus the lease.
    lease_until: float = 0.0
    task: asyncio.Task[Any] | None = None
    settled: bool = False
    lost: bool = False  # the lease ran out or went to another worker: never settle it here


AgentLoader = Callable[[list[str]], Awaitable[None]]
# How each settle is named in an outage's report of what it held up.
SETTLES = {"ack": "acks", "retry": "retries", "dead": "dead letters", "release": "releases"}


class PriorityBroker(AsyncBroker):
    """Taskiq's broker interface over `JobStore`. `kick` enqueues a message whose labels
    carry `agent_id`, `tenant_id`, `priority` (and optionally `dedup_key`); `listen` yields
    claimed jobs as ackable messages."""

    def __init__(self, settings: JobSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or JobSettings()
        self.store = JobStore(self.settings.prefix)
        self.redis: Redis | None = None
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.held: dict[str, Delivery] = {}
        # Loads the caps and PAUSED state of agents Redis does not know yet (the worker
        # sets it: it reads the database).
        self.configure_agents: AgentLoader | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.listener: AsyncGenerator[bytes | AckableMessage, None] | None = None
        self.stopping = False
        # The worker's view of its servers (None outside a worker: errors propagate).
        self.outages: Outages | None = None
        # Deliveries whose runs this worker gave up (their lease ran out during a Redis
        # outage, or went to another worker), to hand back on the next heartbeat.
        self._given_up: list[Delivery] = []
        # Queues again the activities of jobs Redis lost while they ran (it came back
        # without its data): [(job, tenant)]. The worker sets it: it writes the database.
        self.requeue_lost: Callable[[list[tuple[str, str]]], Awaitable[None]] | None = None
        self._requeues: set[asyncio.Task[None]] = set()

    def connect(self, redis: Redis, settings: JobSettings | None = None) -> None:
        self.redis = redis
        if settings is not None:
            self.settings = settings
            self.store = JobStore(settings.prefix)

    def encode(self, message: TaskiqMessage) -> bytes:
        return self.formatter.dumps(message).message

    async def startup(self) -> None:
        await super().startup()
        if self.is_worker_process and self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._renew_leases(), name="job-heartbeat")

    async def shutdown(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        await super().shutdown()

    async def kick(self, message: BrokerMessage) -> None:
        assert self.redis is not None, "connect() the broker to Redis first"
        labels = message.labels
        await self.store.enqueue(
            self.redis,
            job_id=message.task_id,
            agent_id=str(labels["agent_id"]),
            tenant_id=str(labels["tenant_id"]),
            priority=int(labels.get("priority", 5)),
            message=message.message,
            dedup_key=labels.get("dedup_key") or None,
        )

    def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        self.listener = self._listen()
        return self.listener

    async def _listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        assert self.redis is not None, "connect() the broker to Redis first"
        # The receiver cancels this generator when the worker stops; the flag also ends it
        # (within one poll) should a cancellation be lost inside the Redis client.
        while not self.stopping:
            try:
                message = await self._next()
            except Exception as error:
                if not await self._ride_out(error, "claims"):
                    raise
                continue
            if message is not None:
                yield message

    async def _next(self) -> AckableMessage | None:
        """One claim: a job to run, or None after loading agents or waiting for work."""
        assert self.redis is not None
        settings = self.settings
        if self.outages is not None:
            # No claim while the database is down: the job's run could not even start.
            await self.outages.database.wait("claims")
        tenants = tuple(t.hex for t in settings.tenants or ())
        sent = time.monotonic()
        claimed = await self.store.claim(
            self.redis, self.worker_id, int(settings.lease_s * 1000), tenants
        )
        kind = claimed[0]
        if kind == "job":
            _, job_id, data, delivery, attempts, agent_id, tenant_id, enqueued = claimed
            held = Delivery(
                job_id=job_id,
                delivery=int(delivery),
                attempts=int(attempts),
                agent_id=agent_id,
                tenant_id=tenant_id,
                enqueued_ms=int(enqueued),
                claimed_ms=now_ms(),
                lease_until=sent + settings.lease_s,
            )
            self.held[job_id] = held
            return AckableMessage(data=data, ack=self._acker(held))
        if kind == "configure":
            if self.configure_agents is None:
                raise RuntimeError("the broker has no agent loader")
            await self.configure_agents(claimed[1:])
        else:
            await self._wait(claimed[1], claimed[2])
        return None

    async def _ride_out(self, error: BaseException, skipped: str) -> bool:
        """An outage error: wait until its server is back (True). Any other error: False."""
        outage = self.outages.failed(error, skipped) if self.outages is not None else None
        if outage is None:
            return False
        await outage.wait()
        return True

    async def _wait(self, next_delayed: str, next_lease: str) -> None:
        """Block on the wake list until something may start, or until the next retry is
        due or lease runs out (at most `poll_s`)."""
        assert self.redis is not None
        timeout = self.settings.poll_s
        now = now_ms()
        for due in (next_delayed, next_lease):
            if due:
                timeout = min(timeout, max((int(float(due)) - now) / 1000, 0.0))
        if timeout <= 0.005:
            return
        # Shielded: a stopping worker cancels this wait, and a cancellation that lands inside
        # the Redis client's read can be turned into a timeout and retried there (the wait
        # then outlives the stop); the shield lets the short BLPOP finish on its own.
        await asyncio.shield(self.redis.blpop([self.store.key("wake")], timeout=timeout))

    def _acker(self, held: Delivery) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            await self.settle(held, "ack")

        return ack

    async def settle(self, held: Delivery, how: str, *, wait: bool = True, **kwargs: Any) -> Any:
        """ack, retry (due_ms=…), dead (record=…) or release a held delivery, once. While
        Redis is unreachable it waits for it (unless `wait` is False); the delivery's
        number keeps a late settle from touching a job another worker holds by then."""
        assert self.redis is not None
        if held.settled:
            return None
        held.settled = True
        self._drop(held)
        redis, store, job, delivery = self.redis, self.store, held.job_id, held.delivery

        async def call() -> Any:
            if how == "ack":
                return await store.ack(redis, job, delivery)
            if how == "retry":
                return await store.retry(redis, job, delivery, kwargs["due_ms"])
            if how == "dead":
                return await store.dead(redis, job, delivery, kwargs["record"])
            if how == "release":
                return await store.release(redis, job, delivery)
            raise ValueError(how)

        if self.outages is None or not wait:
            return await call()
        return await self.outages.run(SETTLES[how], call, self.outages.redis)

    async def release_all(self) -> int:
        """Hand every held job back (a stopping worker), in its place in the queue. Redis
        unreachable: their leases run out instead, and they are delivered again then."""
        released = 0
        for held in list(self.held.values()):
            if held.task is not None and not held.task.done():
                held.task.cancel()
            with contextlib.suppress(Exception):
                released += bool(await self.settle(held, "release", wait=False))
        return released

    async def _renew_leases(self) -> None:
        """Every `heartbeat_s`, renew the leases of the running jobs; in between, give up a
        run whose lease could not be renewed shortly before it runs out (Redis is down)."""
        assert self.redis is not None
        next_beat = time.monotonic() + self.settings.heartbeat_s
        while True:
            await asyncio.sleep(max(0.0, min(next_beat, self._next_expiry()) - time.monotonic()))
            self._abandon_expired()
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + self.settings.heartbeat_s
            await self._beat()

    def _margin_s(self) -> float:
        # Given up this long before the lease runs out in Redis, so the run has stopped
        # before another worker's claim may take the job.
        return min(1.0, self.settings.lease_s / 4)

    def _next_expiry(self) -> float:
        deadlines = [d.lease_until for d in self.held.values() if not d.settled]
        return min(deadlines, default=float("inf")) - self._margin_s()

    def _abandon_expired(self) -> None:
        limit = time.monotonic() + self._margin_s()
        for held in list(self.held.values()):
            if not held.settled and held.lease_until <= limit:
                self._lose(held, "could not renew the lease of job %s; stopping its run")

    def _drop(self, held: Delivery) -> bool:
        # By identity: this worker may hold a newer delivery of the same job by now.
        if self.held.get(held.job_id) is not held:
            return False
        del self.held[held.job_id]
        return True

    def _lose(self, held: Delivery, message: str) -> None:
        if not self._drop(held):
            return  # settled meanwhile
        held.settled = held.lost = True  # another worker runs it (or will): hands off
        self._given_up.append(held)
        log.warning(message, held.job_id)
        if held.task is not None and not held.task.done():
            held.task.cancel()

    async def _beat(self) -> None:
        assert self.redis is not None
        held = [d for d in self.held.values() if not d.settled]
        if self.outages is not None and self.outages.redis.down:
            if held or self._given_up:
                self.outages.redis.skip("heartbeats")
            return
        lease_s = self.settings.lease_s
        try:
            await self._hand_back()
            if not held:
                return
            sent = time.monotonic()
            lost = await self.store.heartbeat(
                self.redis, int(lease_s * 1000), {d.job_id: d.delivery for d in held}
            )
        except Exception as error:
            if self.outages is None or self.outages.failed(error, "heartbeats") is None:
                log.exception("lease renewal failed; retrying")
            return
        for delivery in held:
            if delivery.job_id in lost:
                self._lose(delivery, "lost the lease of job %s; stopping its run")
            else:
                delivery.lease_until = sent + lease_s

    async def _hand_back(self) -> None:
        """Release the deliveries given up (each only if still this worker's: the others
        run elsewhere already). A job Redis has no trace of was lost with its data while it
        ran: its activity is queued again (`requeue_lost`)."""
        assert self.redis is not None
        vanished: list[Delivery] = []
        try:
            while self._given_up:
                held = self._given_up[0]
                released = await self.store.release(self.redis, held.job_id, held.delivery)
                if not released and not await self.store.existing(self.redis, [held.job_id]):
                    vanished.append(held)
                self._given_up.pop(0)
        finally:
            if vanished and self.requeue_lost is not None:
                jobs = [(d.job_id, d.tenant_id) for d in vanished]
                # Off the heartbeat's path: it waits for the database if that is down too.
                task = asyncio.create_task(self.requeue_lost(jobs), name="requeue-lost")
                self._requeues.add(task)
                task.add_done_callback(self._requeues.discard)


# The process's broker. Tasks register on it (tasks/jobs.py); the gateway uses it only to
# encode messages, the worker connects it to Redis and listens.
broker = PriorityBroker()
