"""The database seen from outside: a span per SQL statement, statement durations, and the
connection pool's gauges. `switchboard.infra.db.create_engine` installs it on every engine.

- Span: named by the statement's first keyword (`SELECT`), with `db.system.name`,
  `db.operation.name` and `db.query.text` (the statement with its placeholders, never the
  values), a child of whatever span is current (the GraphQL operation, a job), only when
  that span records, and made after the request's answer has gone (`tracing.child_span`).
  A failed statement's span carries the error.
- `switchboard_db_statement_duration_seconds{operation}`: every statement, from the
  cursor's execute to its result, as SQLAlchemy's cursor events see it; reads that
  `Database.fetch` runs on the raw asyncpg connection report through `observe_statement`.
- Pool gauges, updated at checkout and checkin: connections in use and open (summed over
  this process's engines), and requests waiting for a connection (`ObservedPool`, the
  engine's pool class, counts callers blocked in the pool's queue). A connection a read
  keeps for the next (infra/kept_connections.py) counts as returned while it waits, and
  as checked out again when the next read takes it (`KeptConnectionsObserver`).
- Pool counters: checkouts, and the seconds each checked-out connection was held until its
  checkin (connection-seconds: what a request, job or relay pass costs a pool, and so
  what it would cost PgBouncer's server connections, which it holds no longer).
- The in-use and open gauges and both counters are published at most every 0.25 s, and
  before each scrape of this process (`_publish_soon`).

Why not opentelemetry-instrumentation-sqlalchemy or -asyncpg: the first (0.66b1) refuses
SQLAlchemy 2.1 and instruments nothing; the second patches asyncpg globally, reports the
pool's own BEGIN/ROLLBACK/SHOW round trips as spans of their own and makes spans even when
nothing records. The cursor events below are the ones the statement counter already uses.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import SpanKind
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from switchboard.observability import metrics
from switchboard.observability.tracing import child_span, recording_parent

_KEYWORDS = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "ROLLBACK", "SET"}
    | {"SHOW", "COPY", "EXPLAIN", "CREATE", "ALTER", "DROP", "TRUNCATE", "VACUUM", "ANALYZE"}
)
_ATTRIBUTE = "_switchboard_observed"
_CHECKED_OUT_AT = "switchboard_checked_out_at"  # in a connection record's `info`
# Per engine (id of its sync Engine): (connections in use, connections open).
_pool_counts: dict[int, tuple[int, int]] = {}
PUBLISH_EVERY_S = 0.25  # the pool gauges' publishing interval at most (`_publish_soon`)
_published_at = 0.0  # time.monotonic() of the last publish
# Checkouts and connection-seconds since the last publish.
_unpublished: list[Any] = [0, 0.0]
_trailing_due: float | None = None  # when the publish scheduled after a skipped one runs


class ObservedPool(AsyncAdaptedQueuePool):
    """The asyncio queue pool, counting callers that have to wait for a connection."""

    # Connections the raw reads keep between statements (infra/kept_connections.py):
    # checked out of the pool, but idle, so not in use for the gauges and counters; and
    # how to have one back (`KeptConnections.release_oldest`) before a caller would wait.
    kept_idle = 0
    release_kept: Callable[[], bool] | None = None

    def _do_get(self) -> Any:
        if self._max_overflow > -1 and self._overflow >= self._max_overflow and self._pool.empty():
            if self.release_kept is not None and self.release_kept():
                return super()._do_get()  # a kept connection is back in the queue
            metrics.DB_POOL_WAITING.inc()
            try:
                return super()._do_get()
            finally:
                metrics.DB_POOL_WAITING.dec()
        return super()._do_get()


# SQLAlchemy names a pool's logger after its class, and keeps its own loggers at WARNING
# (its pool logs a line per checkout at DEBUG): so does this pool's.
logging.getLogger(f"{ObservedPool.__module__}.{ObservedPool.__name__}").setLevel(logging.WARNING)


def instrument_engine(engine: AsyncEngine) -> None:
    """Statement spans and durations, and pool gauges, for `engine`. Install it last."""
    sync_engine = engine.sync_engine
    key = id(sync_engine)

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _started(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if context is not None:
            parent = recording_parent()
            started_ns = time.time_ns() if parent is not None else 0
            setattr(context, _ATTRIBUTE, (time.perf_counter(), parent, started_ns))

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _finished(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        observed = getattr(context, _ATTRIBUTE, None)
        if observed is not None:
            setattr(context, _ATTRIBUTE, None)
            _observe(observed, statement, None)

    @event.listens_for(sync_engine, "handle_error")
    def _failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        observed = getattr(context, _ATTRIBUTE, None) if context is not None else None
        if observed is not None:
            setattr(context, _ATTRIBUTE, None)
            error = exception_context.original_exception
            _observe(observed, exception_context.statement or "", error)

    @event.listens_for(sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        record.info[_CHECKED_OUT_AT] = time.perf_counter()
        _unpublished[0] += 1
        _publish_engine(sync_engine)

    @event.listens_for(sync_engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        checked_out_at = record.info.pop(_CHECKED_OUT_AT, None) if record is not None else None
        if checked_out_at is not None:
            _unpublished[1] += time.perf_counter() - checked_out_at
        # The checkin event comes before the connection is back in the pool's queue.
        _publish_engine(sync_engine, returning=1)

    @event.listens_for(sync_engine, "engine_disposed")
    def _disposed(_: Any) -> None:
        _pool_counts.pop(key, None)
        _publish_pool_counts()


class KeptConnectionsObserver:
    """What a read's kept connection (infra/kept_connections.py) counts as: kept, as back
    in the pool (its held time ends); taken by the next read, as a checkout."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sync_engine = engine.sync_engine

    def kept(self, connection: Any) -> None:
        checked_out_at = connection.info.pop(_CHECKED_OUT_AT, None)
        if checked_out_at is not None:
            _unpublished[1] += time.perf_counter() - checked_out_at
        pool = self.sync_engine.pool
        pool.kept_idle = getattr(pool, "kept_idle", 0) + 1  # any pool class
        _publish_engine(self.sync_engine)

    def taken(self, connection: Any) -> None:
        connection.info[_CHECKED_OUT_AT] = time.perf_counter()
        _unpublished[0] += 1
        self.dropped(connection)
        _publish_engine(self.sync_engine)

    def dropped(self, connection: Any) -> None:
        """It goes back to the pool (whose checkin event follows) or is invalidated."""
        pool = self.sync_engine.pool
        pool.kept_idle = max(getattr(pool, "kept_idle", 0) - 1, 0)


def _publish_engine(sync_engine: Any, returning: int = 0) -> None:
    """Publish soon `sync_engine`'s connections in use (checked out, less `returning` ones
    on their way back and the kept idle ones) and open."""
    pool = sync_engine.pool
    in_use = max(pool.checkedout() - returning - getattr(pool, "kept_idle", 0), 0)
    _set_pool_counts(id(sync_engine), in_use, pool.size() + pool.overflow())


def observe_statement(
    started: float, parent: Any, started_ns: int, statement: str, error: BaseException | None
) -> None:
    """The span and duration of one statement run on a raw driver connection
    (`Database.fetch`): `started` from `time.perf_counter()`, `parent` from
    `recording_parent()` and `started_ns` from `time.time_ns()` when there is a parent."""
    _observe((started, parent, started_ns), statement, error)


def _observe(observed: tuple[float, Any, int], statement: str, error: Any) -> None:
    started, parent, started_ns = observed
    elapsed = time.perf_counter() - started
    keyword = _keyword(statement)
    _duration(keyword).observe(elapsed)
    if parent is not None:
        child_span(
            keyword,
            SpanKind.CLIENT,
            parent,
            started_ns,
            started_ns + int(elapsed * 1e9),
            {
                "db.system.name": "postgresql",
                "db.operation.name": keyword,
                "db.query.text": statement,
            },
            error,
        )


def _set_pool_counts(key: int, in_use: int, open_: int) -> None:
    _pool_counts[key] = (in_use, open_)
    _publish_soon()


def _publish_soon() -> None:
    """Publish the pool's gauges and counters now, or once `PUBLISH_EVERY_S` after the last
    publish.

    Every statement checks a connection out and in: publishing each change cost about 9 us
    a statement (two multiprocess gauges), some 1% of a DashboardOverview. A scrape of this
    process publishes first (`metrics.before_exposition`), so it never reads a stale value."""
    global _published_at, _trailing_due
    now = time.monotonic()
    if _trailing_due is not None and now < _trailing_due + 1.0:
        return  # a trailing publish is on its way (a handle on a closed loop lapses after 1 s)
    if now - _published_at >= PUBLISH_EVERY_S:
        _publish_pool_counts()
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _publish_pool_counts()
        return
    _trailing_due = _published_at + PUBLISH_EVERY_S
    loop.call_later(_trailing_due - now, _publish_pool_counts)


def _publish_pool_counts() -> None:
    global _published_at, _trailing_due
    _published_at, _trailing_due = time.monotonic(), None
    checkouts, held_s = _unpublished
    if checkouts or held_s:
        _unpublished[:] = [0, 0.0]
        metrics.DB_POOL_CHECKOUTS.inc(checkouts)
        metrics.DB_POOL_CONNECTION_SECONDS.inc(held_s)
    metrics.DB_POOL_IN_USE.set(sum(in_use for in_use, _ in _pool_counts.values()))
    metrics.DB_POOL_OPEN.set(sum(open_ for _, open_ in _pool_counts.values()))


@functools.lru_cache(maxsize=2048)
def _keyword(statement: str) -> str:
    head = statement.lstrip().split(None, 1)
    keyword = head[0].upper().rstrip(";") if head else ""
    return keyword if keyword in _KEYWORDS else "OTHER"


@functools.lru_cache(maxsize=64)
def _duration(keyword: str) -> Any:
    return metrics.DB_STATEMENT_DURATION.labels(keyword)


metrics.before_exposition.append(_publish_pool_counts)
