"""The relay: committed outbox rows into Redis Streams, each once, in order.

Every gateway process runs one. It wakes on PostgreSQL's `switchboard_outbox` notification
(sent at the commit of any transaction that wrote an outbox row; never for a rollback) and
every `poll_s` besides, for a notification lost while its listening connection was down.
Behind PgBouncer in transaction mode (no `listen_dsn`) nothing can LISTEN: then every
process's `Database.after_commit` is a `CommitSignal` (infra/commit_signal.py), which
publishes on the Redis channel `WAKE_CHANNEL` after each committed transaction, and the
relays wake on that instead; a signal lost (Redis down, a process killed between its commit
and its publish) costs at most `poll_s`, as a lost notification does.

One relay pass is one transaction:
  1. an advisory lock: the relays of all processes take turns, so batches are published
     one after another, in outbox order (the background loop only tries the lock and, when
     another relay holds it, looks again 20 ms later, so stopping never waits on it);
  2. read the oldest unrelayed rows of `tenant_events` and `activity_stream_events`;
  3. with read replicas, record the primary's WAL position for the tenants whose state
     changed (infra/replicas.py), so what reads them next never reads a replica behind;
     invalidate the response cache for what they changed (edge/invalidation.py: the relay
     sees every committed change of every process, so this is the cache's one way in), and
     publish them (log.py: each row's dedup key is set in the same Lua script as its XADD);
  4. mark them relayed, and commit.
A crash (or a failed commit) between 3 and 4 leaves the rows unrelayed: the next pass, in
this process after a restart or in another process at once, publishes them again, and the
dedup keys make that a no-op for those already in Redis. Nothing is lost, nothing doubled.
Under Sentinel a pass also waits (WAIT) for a replica to hold its entries before marking:
the hub reads from a replica, so what it delivers survives a failover, and what a failover
lost was never marked and goes again to the new primary.

Relayed rows are deleted after `keep_days`, a batch at a time, from the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from redis.asyncio import Redis

from domain.store import outbox
from switchboard.edge.invalidation import invalidate
from switchboard.infra.commit_signal import WAKE_CHANNEL
from switchboard.infra.db import Database
from switchboard.live import log as event_log
from switchboard.live.log import EventLog, Outgoing

log = logging.getLogger(__name__)

CHANNEL = "switchboard_outbox"
BATCH = 500
PURGE_EVERY_S = 3600.0
BUSY_RETRY_S = 0.02  # another relay holds the lock: look again this soon
STOP_WAIT_S = 3.0
# Under Sentinel, how long a pass waits for a replica to acknowledge what it published, and
# how long passes stop waiting after none did. Well under the gateway's Redis socket timeout
# (app.REDIS_TIMEOUT_S, 0.5 s): a WAIT that outlived it would fail every pass, none would
# mark its rows, and the oldest 500 would be published again and again ahead of newer ones.
REPLICA_WAIT_MS = 200
UNACKED_SKIP_S = 10.0


def _hex(value: Any) -> str | None:
    return value.hex if value is not None else None


def tenant_outgoing(row: Any) -> Outgoing:
    return Outgoing(
        dedup_key=f"sb:live:done:te:{row.id}",
        stream=event_log.tenant_stream(row.tenant_id),
        payload={
            "t": row.tenant_id.hex,
            "type": row.type,
            "approval": _hex(row.approval_id),
            "activity": _hex(row.activity_id),
            "agent": _hex(row.agent_id),
            "campaign": _hex(row.campaign_id),
            "at": row.occurred_at.isoformat(),
        },
    )


def stream_outgoing(row: Any) -> Outgoing:
    return Outgoing(
        dedup_key=f"sb:live:done:as:{row.id}",
        stream=event_log.activity_stream(row.activity_id),
        payload={
            "t": row.tenant_id.hex,
            "activity": row.activity_id.hex,
            "kind": row.kind,
            "text": row.text,
            "status": row.status,
            "at": row.occurred_at.isoformat(),
        },
    )


class Relay:
    def __init__(
        self,
        db: Database,
        redis: Redis,
        listen_dsn: str | None,
        *,
        subscriber: Callable[[], Redis] | None = None,
        poll_s: float = 1.0,
        keep_days: int = 7,
        replica_acks: int = 0,
    ) -> None:
        """`listen_dsn`: a session connection for LISTEN; None (a transaction pooler): wake
        on `WAKE_CHANNEL`, through a client from `subscriber`, instead."""
        self.db = db
        self.redis = redis
        self.log = EventLog(redis)
        self.listen_dsn = listen_dsn
        self.subscriber = subscriber
        self.poll_s = poll_s
        self.keep_days = keep_days
        self.replica_acks = replica_acks
        self._unacked_until = 0.0  # no replica answered: relay without waiting until then
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._wakeups: asyncio.Task[None] | None = None  # reads WAKE_CHANNEL
        self._failing = False  # a streak of failures is logged once, and its end
        self.published = 0  # events this relay appended to Redis (dedup skips don't count)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Finish the pass under way (never cut a transaction short), then stop."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_WAIT_S)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._close_listener()

    async def relay_pending(self, *, wait_for_lock: bool = True) -> int:
        """Publish every committed unrelayed row; returns how many passes moved rows.
        `wait_for_lock` False: give up at once while another relay holds the lock (the
        background loop then tries again shortly)."""
        passes = 0
        while True:
            moved = await self.relay_once(wait_for_lock=wait_for_lock)
            if moved is None:
                self._loop_again_in(BUSY_RETRY_S)
                return passes
            if moved:
                passes += 1
            if moved < BATCH:
                return passes

    async def relay_once(
        self, *, before_commit: Any = None, wait_for_lock: bool = True
    ) -> int | None:
        """One pass (see the module docstring); returns how many rows it moved, None when
        another relay held the lock. `before_commit`: called after publishing, before the
        commit (tests inject a crash there). Its commit wakes no relay: it wrote no outbox
        row (infra/db.py, `transaction`)."""
        async with self.db.transaction(wakes_relays=False) as conn:
            if not await outbox.take_relay_turn(conn, wait=wait_for_lock):
                return None
            tenant_rows, stream_rows = await outbox.unrelayed(conn, BATCH)
            if not tenant_rows and not stream_rows:
                return 0
            outgoing = [tenant_outgoing(r) for r in tenant_rows]
            outgoing += [stream_outgoing(r) for r in stream_rows]
            changes = [(r.tenant_id.hex, r.type) for r in tenant_rows]
            changes += [
                (r.tenant_id.hex, "ACTIVITY_STATUS_CHANGED")
                for r in stream_rows
                if r.kind == "STATUS"
            ]
            if changes and self.db.replicas is not None:
                # Before subscribers and cache refills read them: not from a replica behind.
                tenants = {r.tenant_id for r in tenant_rows}
                tenants |= {r.tenant_id for r in stream_rows if r.kind == "STATUS"}
                await self.db.replicas.wrote(tenants, conn)
            # Invalidated before publishing: a subscriber that reads again on an event reads
            # past the cache, and under Sentinel the publish's WAIT covers the bump too
            # (replication offsets are global), so a failover cannot bring back a stale entry.
            if changes and not await invalidate(self.redis, changes):
                raise ConnectionError("the response cache could not be invalidated")
            self.published += await self._publish(outgoing)
            if before_commit is not None:
                before_commit()
            await outbox.mark_relayed(conn, "tenant_events", [r.id for r in tenant_rows])
            await outbox.mark_relayed(conn, "activity_stream_events", [r.id for r in stream_rows])
        return max(len(tenant_rows), len(stream_rows))

    async def _publish(self, outgoing: list[Outgoing]) -> int:
        """Publish; under Sentinel also wait (WAIT) until a replica holds the entries, so a
        row is marked relayed only once a failover cannot lose its entry. A primary that
        dies first fails the pass, and the rows go again to the new primary (whose dedup
        keys are the replicated ones). With no replica answering (it is down: there is
        nothing to fail over to), the rows are marked anyway and the next passes skip the
        wait for a while rather than hold every event up by the timeout."""
        now_ms = int(time.time() * 1000)
        if not self.replica_acks or time.monotonic() < self._unacked_until:
            return await self.log.publish(outgoing, now_ms)
        published, acked = await self.log.publish_replicated(
            outgoing, now_ms, self.replica_acks, REPLICA_WAIT_MS
        )
        if acked < self.replica_acks:
            self._unacked_until = time.monotonic() + UNACKED_SKIP_S
            log.warning(
                "outbox relay: no replica acknowledged within %d ms; relaying without "
                "waiting for %.0f s",
                REPLICA_WAIT_MS,
                UNACKED_SKIP_S,
            )
        return published

    async def _run(self) -> None:
        last_purge = time.monotonic()
        while not self._stopping:
            await self._listen()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.relay_pending(wait_for_lock=False)
                if time.monotonic() - last_purge > PURGE_EVERY_S:
                    await self.purge()
                    last_purge = time.monotonic()
                self._recovered()
            except Exception as error:  # the rows stay unrelayed; the next pass retries
                self._failed("outbox relay pass failed (retrying every %.1f s): %s", error)

    async def _listen(self) -> None:
        """(Re)open the listening connection (or the Redis subscription); without one the
        relay polls every poll_s."""
        if self.listen_dsn is None:
            await self._subscribe()
            return
        if self._listener is not None and not self._listener.is_closed():
            return
        await self._close_listener()
        try:
            self._listener = await asyncpg.connect(self.listen_dsn, timeout=5)
            await self._listener.add_listener(CHANNEL, self._notified)
        except Exception as error:
            self._listener = None
            self._failed("outbox relay cannot listen (polling every %.1f s): %s", error)
            return
        self._wake.set()  # a pass at once: rows may have committed while nobody listened

    async def _subscribe(self) -> None:
        if self._wakeups is not None and not self._wakeups.done():
            return
        assert self.subscriber is not None, "a relay without listen_dsn needs a subscriber"
        # Its own client: a subscription blocks longer than the short request timeouts.
        client = self.subscriber()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(WAKE_CHANNEL)
        except Exception as error:
            await _close_quietly(pubsub, client)
            self._failed("outbox relay cannot subscribe (polling every %.1f s): %s", error)
            return
        self._wakeups = asyncio.create_task(self._read_wakeups(pubsub, client))
        self._wake.set()  # a pass at once: rows may have committed while nobody listened

    async def _read_wakeups(self, pubsub: Any, client: Redis) -> None:
        try:
            async for _ in pubsub.listen():
                self._wake.set()
        except Exception as error:  # Redis went away: the loop subscribes again
            self._failed("outbox relay lost its subscription (polling every %.1f s): %s", error)
        finally:
            await _close_quietly(pubsub, client)

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    def _loop_again_in(self, seconds: float) -> None:
        asyncio.get_running_loop().call_later(seconds, self._wake.set)

    def _failed(self, message: str, error: Exception) -> None:
        if not self._failing:
            log.warning(message, self.poll_s, error)
        self._failing = True

    def _recovered(self) -> None:
        listening = self._listener if self.listen_dsn is not None else self._wakeups
        if self._failing and listening is not None:
            log.info("outbox relay recovered")
            self._failing = False

    async def _close_listener(self) -> None:
        wakeups, self._wakeups = self._wakeups, None
        if wakeups is not None and not wakeups.done():
            wakeups.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await wakeups
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)

    async def purge(self) -> None:
        """Delete relayed rows older than `keep_days` (Redis keeps 24 hours anyway)."""
        for table in outbox.OUTBOXES:
            async with self.db.transaction(wakes_relays=False) as conn:
                await outbox.purge_relayed(conn, table, self.keep_days)


async def _close_quietly(pubsub: Any, client: Redis) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()
    with contextlib.suppress(Exception):
        await client.aclose()
