"""The database: a bounded SQLAlchemy async pool over asyncpg, and the one way to run a read.

- The pool has a maximum size, a checkout timeout, an idle timeout (a connection idle for
  longer is replaced at checkout), a 5 s connect timeout and a statement timeout on every
  query (PostgreSQL's `statement_timeout`, 10 s by default).
- Reads run on autocommit connections (no BEGIN/ROLLBACK round trips) and a read that hit
  the statement timeout is retried once.
- Every statement is counted in the current request's `StatementCounter`, which is how the
  tests prove that an operation's statement count does not grow with its rows.
- `unavailable(error)` tells an outage (the server cannot be reached, is starting or shutting
  down, dropped the connection, or the pool had none to give) from a bug, so callers can
  answer "retry shortly" instead of failing.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import event, exc, make_url, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import TextClause

from switchboard.observability.database import ObservedPool, instrument_engine
from switchboard.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class StatementCounter:
    count: int = 0


current_counter: contextvars.ContextVar[StatementCounter | None] = contextvars.ContextVar(
    "statement_counter", default=None
)


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as libpq and plain asyncpg take it (`postgresql://…`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(settings: Settings, url: str) -> AsyncEngine:
    engine = create_async_engine(
        url,
        poolclass=ObservedPool,  # observability: counts requests waiting for a connection
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        connect_args={
            "timeout": settings.db_connect_timeout_s,
            "server_settings": {
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "application_name": "switchboard",
            },
        },
    )
    _install_idle_timeout(engine, settings.db_idle_timeout_s)
    _install_statement_counter(engine)
    _install_slow_statement_log(engine, settings.db_slow_statement_ms)
    instrument_engine(engine)  # observability: statement spans and durations, pool gauges
    return engine


def _install_idle_timeout(engine: AsyncEngine, idle_timeout_s: float) -> None:
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is not None and time.monotonic() - checked_in_at > idle_timeout_s:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError("connection idle past the pool's idle timeout")


def _install_statement_counter(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(*_: Any) -> None:
        counter = current_counter.get()
        if counter is not None:
            counter.count += 1


def _install_slow_statement_log(engine: AsyncEngine, slow_ms: float) -> None:
    """Log a statement slower than `slow_ms` with its text and its plan."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _started(conn: Any, *_: Any) -> None:
        conn.info.setdefault("statement_started", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _finished(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        elapsed_ms = (time.perf_counter() - conn.info["statement_started"].pop()) * 1000
        if elapsed_ms < slow_ms or many:
            return
        log.warning(
            "slow statement: %.1f ms\n%s\nplan:\n%s",
            elapsed_ms,
            statement.strip(),
            _plan(conn, statement, parameters),
        )

    @event.listens_for(engine.sync_engine, "handle_error")
    def _failed(context: Any) -> None:
        started = context.connection.info.get("statement_started") if context.connection else None
        if started:
            started.pop()


def _plan(conn: Any, statement: str, parameters: Any) -> str:
    """EXPLAIN (without running it again) on a cursor of its own, so the result in hand stays."""
    if not statement.lstrip().upper().startswith(("SELECT", "WITH", "INSERT", "UPDATE", "DELETE")):
        return "(no plan for this kind of statement)"
    try:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        return "\n".join(row[0] for row in cursor.fetchall())
    except Exception as error:  # the plan is a courtesy; never fail the statement for it
        return f"(no plan: {type(error).__name__})"


class Database:
    """The engine of this process and the helpers every read and write goes through."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def fetch(
        self, sql: TextClause | str, params: Mapping[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        """Run one read statement; retried once if it hit the statement timeout."""
        statement = _text(sql) if isinstance(sql, str) else sql
        try:
            return await self._fetch_once(statement, params)
        except exc.DBAPIError as error:
            if not _is_query_canceled(error):
                raise
            log.warning("read hit the statement timeout; retrying once")
            return await self._fetch_once(statement, params)

    async def _fetch_once(
        self, statement: TextClause, params: Mapping[str, Any] | None
    ) -> Sequence[Row[Any]]:
        async with self._autocommit.connect() as conn:
            result = await conn.execute(statement, params or {})
            return result.all()

    def transaction(self) -> Any:
        """`async with db.transaction() as conn:` — one transaction, committed on success."""
        return self.engine.begin()

    def connect(self) -> Any:
        return self.engine.connect()

    async def dispose(self) -> None:
        await self.engine.dispose()


@functools.lru_cache(maxsize=1024)
def _text(sql: str) -> TextClause:
    # Loaders build the same few SQL strings again and again; parse each one once.
    return text(sql)


# Errors that say the database cannot serve now, not that the statement was wrong: the
# connection classes 08xxx, and operator intervention 57P01-57P03 (shutdown, crash, starting).
_OUTAGE_ERRORS = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    OSError,  # refused, reset, unreachable
    TimeoutError,  # the connect timeout
    exc.TimeoutError,  # no pooled connection within the pool's timeout
    exc.DisconnectionError,
)


def unavailable(error: BaseException | None) -> bool:
    """Whether `error` (or what caused it) means the database cannot be reached now."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, _OUTAGE_ERRORS):
            return True
        if type(current) is asyncpg.exceptions.InterfaceError and "closed" in str(current):
            return True  # "connection is closed", "connection was closed in the middle …"
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend((getattr(current, "orig", None), current.__cause__, current.__context__))
    return False


def _is_query_canceled(error: exc.DBAPIError) -> bool:
    orig = getattr(error, "orig", None)
    cause = getattr(orig, "__cause__", None)
    return isinstance(cause, asyncpg.exceptions.QueryCanceledError) or "canceling statement" in str(
        error
    )
