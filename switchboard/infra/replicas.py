"""Read replicas: which server a read-side statement runs on, and how fresh each replica is.

With `DATABASE_REPLICA_URLS`, `Database.fetch` of a request's loaders (`Database.reads_for`)
asks the `ReplicaRouter`; everything else (writes, transactions, auth, jobs) stays on the
primary.

- Freshness. One background task reads, every `SWITCHBOARD_REPLICA_POLL_MS`, the primary's
  `pg_current_wal_lsn()` and each replica's `pg_last_wal_replay_lsn()` (one connection per
  server). A replica's lag is how long it has been missing WAL the primary had: 0 when it
  has replayed up to the primary's last position (an idle primary's replica is not
  "behind"), else the time since the primary was first seen past the replica. A replica
  lagging more than `SWITCHBOARD_REPLICA_MAX_LAG_MS`, unreachable, or failing a read is
  skipped until it is back; the start of that episode is one warning, its end one info line.
- Read-your-writes. After a write commits, `wrote(tenant)` reads the primary's WAL position
  and keeps it for the tenant, in this process and in Redis (`sb:replica:lsn:<tenant>`, for
  every gateway process) for the lag bound plus 2 s; past that, every usable replica has
  replayed it. A tenant's reads go to a replica only once its replay position has reached
  the tenant's last write, else to the primary. The outbox relay records the tenants of
  every event it publishes (job workers', the approval-expiry job's, operators' changes), so
  live events and response-cache refills never read a replica behind the change.
- Every routed read is counted in `switchboard_db_reads_total{target, reason}`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from switchboard.infra.db import Database, create_engine, libpq_url, unavailable
from switchboard.observability import metrics
from switchboard.settings import Settings

log = logging.getLogger(__name__)

PRIMARY_LSN_SQL = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
REPLAY_LSN_SQL = "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint"
KEY_PREFIX = "sb:replica:lsn:"
# A tenant whose write position could not be read is sent to the primary until it expires.
UNREADABLE_LSN = 1 << 62
REDIS_RETRY_S = 2.0
MAX_SAMPLES = 100_000  # the primary's positions kept for lag (hours of polls)
# Keep the higher of the stored and the new position; either way the TTL starts again.
_RAISE_LSN = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
"""


def replica_name(url: str) -> str:
    """host:port/database, never the password (a metric label and log field)."""
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "local"
    return f"{host}:{parsed.port or 5432}/{parsed.database or ''}"


@dataclass(eq=False)
class Replica:
    name: str
    dsn: str
    db: Database
    replay_lsn: int = -1
    lag_s: float = 0.0
    usable: bool = False  # until its first poll answers
    skipped_since: float | None = None  # the episode under way
    conn: asyncpg.Connection | None = None


@dataclass(eq=False)
class ReadScope:
    """The read side of one request (or live event) in one tenant."""

    router: ReplicaRouter
    tenant_id: uuid.UUID
    shared_lsn: int | None = None  # the tenant's last write as Redis had it, read once
    looked_up: bool = False

    async def fetch(self, sql: TextClause | str, params: Mapping[str, Any] | None) -> Any:
        return await self.router.fetch(self, sql, params)


@dataclass(eq=False)
class _Written:
    lsn: int
    until: float


@dataclass
class ReplicaRouter:
    primary: Database
    replicas: list[Replica]
    redis: Redis
    primary_dsn: str
    max_lag_s: float
    poll_s: float
    connect_timeout_s: float
    _samples: list[tuple[int, float]] = field(default_factory=list)  # (LSN, first seen)
    _written: dict[uuid.UUID, _Written] = field(default_factory=dict)
    _primary_conn: asyncpg.Connection | None = None
    _task: asyncio.Task[None] | None = None
    _turn: int = 0
    _redis_down_until: float = 0.0

    @classmethod
    def from_settings(
        cls, settings: Settings, primary: Database, primary_url: str, redis: Redis
    ) -> ReplicaRouter | None:
        if not settings.database_replica_urls:
            return None
        replicas = []
        for url in settings.database_replica_urls:
            db = Database(create_engine(settings, url))
            db.read_listeners = primary.read_listeners  # one list: tests capture every read
            replicas.append(Replica(replica_name(url), libpq_url(url), db))
        return cls(
            primary=primary,
            replicas=replicas,
            redis=redis,
            primary_dsn=libpq_url(primary_url),
            max_lag_s=settings.replica_max_lag_ms / 1000,
            poll_s=settings.replica_poll_ms / 1000,
            connect_timeout_s=min(settings.db_connect_timeout_s, 1.0),
        )

    @property
    def ttl_s(self) -> float:
        return self.max_lag_s + 2.0

    # Lifetime

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll_forever(), name="replica-poll")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in [self._primary_conn, *(r.conn for r in self.replicas)]:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 1.0)
        for replica in self.replicas:
            await replica.db.dispose()

    def scope(self, tenant_id: uuid.UUID) -> ReadScope:
        return ReadScope(self, tenant_id)

    # Routing

    async def fetch(
        self, scope: ReadScope, sql: TextClause | str, params: Mapping[str, Any] | None
    ) -> Any:
        """Rows from a replica that has replayed the tenant's last write, or None: the caller
        runs the statement on the primary."""
        usable = [replica for replica in self.replicas if replica.usable]
        if not usable:
            return _on_primary("no_replica")
        needed = await self._needed_lsn(scope)
        if needed is None:
            return _on_primary("unknown_writes")
        fresh = [replica for replica in usable if replica.replay_lsn >= needed]
        if not fresh:
            return _on_primary("own_write")
        self._turn += 1
        replica = fresh[self._turn % len(fresh)]
        try:
            rows = await replica.db.fetch(sql, params)
        except Exception as error:
            if not (unavailable(error) or _recovery_conflict(error)):
                raise  # the statement's own fault: the primary would fail it too
            self._skip(replica, f"a read failed ({type(error).__name__})")
            return _on_primary("replica_failed")
        metrics.DB_READS.labels("replica", "caught_up").inc()
        return rows

    async def _needed_lsn(self, scope: ReadScope) -> int | None:
        """The tenant's last write position known here and in Redis (0: none); None when
        Redis cannot say."""
        now = time.monotonic()
        written = self._written.get(scope.tenant_id)
        local = written.lsn if written is not None and written.until > now else 0
        if not scope.looked_up:
            if now < self._redis_down_until:
                return None
            try:
                raw = await self.redis.get(KEY_PREFIX + scope.tenant_id.hex)
            except (RedisError, OSError) as error:
                self._redis_failed(error)
                return None
            scope.shared_lsn = int(raw) if raw is not None else 0
            scope.looked_up = True
        return max(local, scope.shared_lsn or 0)

    # Writes

    async def wrote(
        self, tenant_ids: Iterable[uuid.UUID], conn: AsyncConnection | None = None
    ) -> None:
        """After a commit (or, with `conn`, inside the transaction that reads committed
        rows): the tenants' reads wait for a replica that has replayed the primary's
        current position. Never raises: the write has committed."""
        tenants = set(tenant_ids)
        if not tenants:
            return
        try:
            if conn is not None:
                lsn = int((await conn.execute(text(PRIMARY_LSN_SQL))).scalar_one())
            else:
                lsn = int((await self.primary.fetch(PRIMARY_LSN_SQL))[0][0])
        except Exception as error:
            log.warning("could not read the primary's WAL position after a write: %s", error)
            lsn = UNREADABLE_LSN
        until = time.monotonic() + self.ttl_s
        for tenant in tenants:
            current = self._written.get(tenant)
            if current is None or current.lsn < lsn or current.until < until:
                self._written[tenant] = _Written(max(lsn, current.lsn if current else 0), until)
        if len(self._written) > 10_000:
            now = time.monotonic()
            self._written = {t: w for t, w in self._written.items() if w.until > now}
        ttl_ms = int(self.ttl_s * 1000)
        try:
            for tenant in tenants:
                await self.redis.eval(_RAISE_LSN, 1, KEY_PREFIX + tenant.hex, lsn, ttl_ms)
        except (RedisError, OSError) as error:
            self._redis_failed(error)

    def _redis_failed(self, error: BaseException) -> None:
        if time.monotonic() >= self._redis_down_until:
            log.warning(
                "Redis unavailable for read-your-writes (%s); reads go to the primary",
                type(error).__name__,
            )
        self._redis_down_until = time.monotonic() + REDIS_RETRY_S

    # Freshness

    async def _poll_forever(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.poll()
            except Exception:  # keep polling: a bug here must not stop replica reads forever
                log.exception("replica poll failed")
            await asyncio.sleep(max(0.0, self.poll_s - (time.monotonic() - started)))

    async def poll(self) -> None:
        """One round: the primary's position, then each replica's, and their states."""
        primary, *replayed = await asyncio.gather(
            self._read_lsn(None),
            *(self._read_lsn(r) for r in self.replicas),
            return_exceptions=True,
        )
        now = time.monotonic()
        if isinstance(primary, int) and (not self._samples or primary > self._samples[-1][0]):
            self._samples.append((primary, now))
        for replica, result in zip(self.replicas, replayed, strict=True):
            if isinstance(result, BaseException) or result is None:
                why = "not a replica" if result is None else f"unreachable ({_describe(result)})"
                self._skip(replica, why)
                continue
            replica.replay_lsn = result
            replica.lag_s = self._lag(result, now)
            metrics.DB_REPLICA_LAG.labels(replica.name).set(replica.lag_s)
            if replica.lag_s > self.max_lag_s:
                self._skip(replica, f"{replica.lag_s * 1000:.0f} ms behind the primary")
            else:
                await self._use(replica, now)
        self._trim()

    async def _read_lsn(self, replica: Replica | None) -> int | None:
        conn = self._primary_conn if replica is None else replica.conn
        if conn is None or conn.is_closed():
            conn = await asyncpg.connect(
                self.primary_dsn if replica is None else replica.dsn,
                timeout=self.connect_timeout_s,
                server_settings={"application_name": "switchboard-replica-poll"},
            )
            if replica is None:
                self._primary_conn = conn
            else:
                replica.conn = conn
        sql = PRIMARY_LSN_SQL if replica is None else REPLAY_LSN_SQL
        try:
            value = await asyncio.wait_for(conn.fetchval(sql), self.connect_timeout_s)
        except BaseException:
            conn.terminate()
            raise
        return None if value is None else int(value)

    def _lag(self, replayed: int, now: float) -> float:
        """Since when the primary has had WAL the replica has not replayed."""
        index = bisect.bisect_right(self._samples, replayed, key=lambda sample: sample[0])
        if index >= len(self._samples):
            return 0.0
        return now - self._samples[index][1]

    def _trim(self) -> None:
        """Drop positions every replica has replayed, but the last (the primary's now)."""
        replayed = min((r.replay_lsn for r in self.replicas), default=-1)
        drop = bisect.bisect_right(self._samples, replayed, key=lambda sample: sample[0])
        drop = max(min(drop, len(self._samples) - 1), len(self._samples) - MAX_SAMPLES)
        if drop > 0:
            del self._samples[:drop]

    def _skip(self, replica: Replica, why: str) -> None:
        metrics.DB_REPLICA_USABLE.labels(replica.name).set(0)
        was_usable, replica.usable = replica.usable, False
        if replica.skipped_since is None:
            replica.skipped_since = time.monotonic()
            if was_usable or replica.replay_lsn >= 0:
                log.warning("read replica %s skipped: %s; reads go elsewhere", replica.name, why)
            else:
                log.warning("read replica %s not used yet: %s", replica.name, why)

    async def _use(self, replica: Replica, now: float) -> None:
        if replica.usable:
            return
        if replica.skipped_since is not None:
            # Pooled connections may have died with the server: start the pool afresh.
            await replica.db.reset_pool()
            log.info("read replica %s back after %.1f s", replica.name, now - replica.skipped_since)
            replica.skipped_since = None
        replica.usable = True
        metrics.DB_REPLICA_USABLE.labels(replica.name).set(1)


def _on_primary(reason: str) -> None:
    metrics.DB_READS.labels("primary", reason).inc()
    return None


def _recovery_conflict(error: BaseException) -> bool:
    """A standby cancelled the statement for a conflict with WAL replay (40001)."""
    return "conflict with recovery" in str(error)


def _describe(error: BaseException) -> str:
    return type(error).__name__ + (f": {error}" if str(error) else "")
