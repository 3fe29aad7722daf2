"""The database: a bounded SQLAlchemy async pool over asyncpg, and the one way to run a read.

- The pool has a maximum size, a checkout timeout, an idle timeout (a connection idle for
  longer is replaced at checkout), a 5 s connect timeout and a statement timeout on every
  query (PostgreSQL's `statement_timeout`, 10 s by default).
- Reads run on autocommit connections (no BEGIN/ROLLBACK round trips) and a read that hit
  the statement timeout is retried once.
- `fetch` of an SQL string runs on the pooled asyncpg connection itself, past SQLAlchemy's
  execution (statement objects, result machinery, cursor events: 0.30 ms of CPU per loader
  statement against 0.065 ms for asyncpg's own): its `:name` parameters become `$n` once
  per SQL text, asyncpg prepares and caches the statement per connection, and this module
  does by hand what the engine's events do for everything else (counting, slow-statement
  log, spans and durations, errors wrapped as SQLAlchemy's). One pool serves both paths: a second
  (asyncpg) pool measured only about 25 us per statement cheaper and would double the
  connections. Writes and transactions stay on SQLAlchemy. A read hands its connection to the
  next read for up to `KEEP_S` instead of returning it (infra/kept_connections.py).
- Behind PgBouncer in transaction mode (SWITCHBOARD_DB_POOLER=transaction) nothing needs
  a session: see `connect_args`. `after_commit` (set by the live relay's wake-ups then)
  runs after every committed `transaction()` but the relay's own (`wakes_relays=False`).
- Every statement is counted in the current request's `StatementCounter`, which is how the
  tests prove that an operation's statement count does not grow with its rows.
- `unavailable(error)` tells an outage (the server cannot be reached, is starting or shutting
  down, dropped the connection, or the pool had none to give) from a bug, so callers can
  answer "retry shortly" instead of failing.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import Engine, event, exc, make_url, text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.util import greenlet_spawn

from switchboard.infra.kept_connections import KeptConnections
from switchboard.observability.database import (
    KeptConnectionsObserver,
    ObservedPool,
    instrument_engine,
    observe_statement,
)
from switchboard.observability.tracing import recording_parent
from switchboard.settings import Settings

if TYPE_CHECKING:
    from switchboard.infra.replicas import ReadScope, ReplicaRouter

log = logging.getLogger(__name__)

KEEP_S = 1.0  # how long a read's connection waits for the next read before the pool has it


@dataclass
class StatementCounter:
    count: int = 0


current_counter: contextvars.ContextVar[StatementCounter | None] = contextvars.ContextVar(
    "statement_counter", default=None
)


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as libpq and plain asyncpg take it (`postgresql://…`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Row(asyncpg.Record):
    """A row of `Database.fetch`: asyncpg's record (by index, name or slice; iterable), and
    by attribute as SQLAlchemy's rows are."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(self.items())


def connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's connect arguments for this deployment's database path (SWITCHBOARD_DB_POOLER).

    `transaction` (PgBouncer in transaction mode, 1.18: each transaction may run on another
    server connection) keeps no state past a transaction:
    - statements are unnamed (asyncpg's cache off for `fetch`, SQLAlchemy's off and its
      names empty): asyncpg sends an unnamed statement's Parse again with its Bind, Execute
      and Sync, so nothing is looked up on a server connection it was not parsed on. Named
      statements, even with unique names, fail there: asyncpg closes statements it dropped
      with a Close and a Sync between a new statement's Parse and its Bind, and the Sync
      lets PgBouncer hand the server connection to another client ("prepared statement …
      does not exist"); their names would also pile up on the servers.
    - no `statement_timeout` startup parameter (PgBouncer 1.18 refuses the connection:
      "unsupported startup parameter"): the timeout is asyncpg's `command_timeout`, which
      cancels the statement on the server (PgBouncer forwards the cancel request), raised
      as the server's own timeout (`_install_client_timeout_as_server_timeout`).
    `application_name` is one of the parameters PgBouncer tracks, so it stays.
    `client_encoding` is asked for as PostgreSQL names it (asyncpg asks for "utf-8"): a
    PgBouncer compares the two as text and, finding them different, sent
    `SET client_encoding` before every transaction it assigned a server connection to."""
    args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_s,
        "server_settings": {"application_name": "switchboard", "client_encoding": "UTF8"},
    }
    if settings.db_pooler == "transaction":
        args["command_timeout"] = settings.db_statement_timeout_ms / 1000
    else:
        args["server_settings"]["statement_timeout"] = str(settings.db_statement_timeout_ms)
    if settings.db_pooler == "transaction" or settings.db_statement_cache_size == 0:
        args |= UNNAMED_STATEMENTS
    else:
        args["statement_cache_size"] = settings.db_statement_cache_size
    return args


def _unnamed() -> str:
    return ""


# asyncpg's statement cache off (`fetch`), SQLAlchemy's off and its statements unnamed.
UNNAMED_STATEMENTS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": _unnamed,
}


def command_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's connect arguments for one-off commands (migrate, seed, token, skill): no
    statement timeout (a migration or a bulk load may take long), unnamed statements
    behind a transaction pooler."""
    return dict(UNNAMED_STATEMENTS) if settings.db_pooler == "transaction" else {}


def create_command_engine(settings: Settings, url: str) -> AsyncEngine:
    return create_async_engine(url, connect_args=command_connect_args(settings))


def create_engine(settings: Settings, url: str) -> AsyncEngine:
    engine = create_async_engine(
        url,
        poolclass=ObservedPool,  # observability: counts requests waiting for a connection
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        connect_args=connect_args(settings),
    )
    _install_idle_timeout(engine, settings.db_idle_timeout_s)
    _install_statement_counter(engine)
    _install_slow_statement_log(engine, settings.db_slow_statement_ms)
    if settings.db_pooler == "transaction":
        _install_client_timeout_as_server_timeout(engine)
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


def _install_client_timeout_as_server_timeout(engine: AsyncEngine) -> None:
    """A statement past asyncpg's command_timeout (the statement timeout behind a
    transaction pooler) raises what PostgreSQL's own timeout raises, so that callers treat
    both alike (a read retried once; not an outage)."""
    dbapi = engine.dialect.loaded_dbapi

    @event.listens_for(engine.sync_engine, "handle_error")
    def _timed_out(context: Any) -> Any:
        if context.statement is None or not isinstance(context.original_exception, TimeoutError):
            return None  # not a statement's (a connect timeout stays an outage)
        cancelled = asyncpg.exceptions.QueryCanceledError(
            "canceling statement due to statement timeout"
        )
        translated = dbapi.Error(str(cancelled))
        translated.__cause__ = cancelled
        return exc.DBAPIError.instance(
            context.statement, context.parameters, translated, dbapi.Error
        )


def _install_statement_counter(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(*_: Any) -> None:
        counter = current_counter.get()
        if counter is not None:
            counter.count += 1


# The slow-statement threshold of each engine, for the reads `Database.fetch` runs raw.
_slow_ms: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
# A statement's plan is logged at most once a minute: on an overloaded machine every
# statement is slow, and an EXPLAIN (a round trip) plus a long log line per slow statement
# made the overload worse (12% of a loaded gateway's CPU, perf/README.md).
PLAN_EVERY_S = 60.0
PLANNED_STATEMENTS = 1000  # statements remembered; past it, forgotten all at once
_planned_at: dict[str, float] = {}


def _plan_due(statement: str) -> bool:
    """Whether this slow statement's plan is to be logged now (and note that it was)."""
    now = time.monotonic()
    last = _planned_at.get(statement)
    if last is not None and now - last < PLAN_EVERY_S:
        return False
    if len(_planned_at) >= PLANNED_STATEMENTS:
        _planned_at.clear()
    _planned_at[statement] = now
    return True


PLAN_LOGGED = "(logged with this statement's first slow run of the minute)"


def _install_slow_statement_log(engine: AsyncEngine, slow_ms: float) -> None:
    """Log a statement slower than `slow_ms` with its text and its plan."""
    _slow_ms[engine.sync_engine] = slow_ms

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
            _plan(conn, statement, parameters) if _plan_due(statement) else PLAN_LOGGED,
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
        self._sync_engine = engine.sync_engine
        self._slow_ms = _slow_ms.get(engine.sync_engine, float("inf"))
        self._dbapi = engine.dialect.loaded_dbapi
        # Called with each raw read's SQL and arguments before it runs: the raw reads pass
        # no SQLAlchemy cursor event (tests/integration/test_query_plans.py captures
        # statements here).
        self.read_listeners: list[Callable[[str, Sequence[Any]], None]] = []
        # Called after each `transaction()` commits (not after a rollback).
        self.after_commit: Callable[[], None] | None = None
        # Read replicas (switchboard/infra/replicas.py), consulted by `reads_for`'s views.
        self.replicas: ReplicaRouter | None = None
        self._scope: ReadScope | None = None
        # Half the pool at most (none for a pool of one); a caller the pool would make wait
        # takes a kept one instead. `reads_for`'s views share them.
        size = engine.sync_engine.pool.size()
        self._kept = KeptConnections(size // 2, KEEP_S, KeptConnectionsObserver(engine))
        self._attach_pool()

    def _attach_pool(self) -> None:
        """Let a caller the engine's (new) pool would make wait take a kept connection."""
        pool = self._sync_engine.pool
        if isinstance(pool, ObservedPool):
            pool.release_kept = self._kept.release_oldest

    def reads_for(self, tenant_id: uuid.UUID) -> Database:
        """This database for the read side (loaders/) of one request in `tenant_id`: with
        read replicas, its `fetch` may run on one that has replayed the tenant's writes."""
        if self.replicas is None:
            return self
        view = copy.copy(self)
        view._scope = self.replicas.scope(tenant_id)
        return view

    async def fetch(
        self, sql: TextClause | str, params: Mapping[str, Any] | None = None
    ) -> Sequence[Any]:
        """Run one read statement; retried once if it hit the statement timeout. Rows are
        `Row`s (an SQL string) or SQLAlchemy's (a `TextClause`, whose typed parameters
        SQLAlchemy processes)."""
        if self._scope is not None:
            rows = await self._scope.fetch(sql, params)
            if rows is not None:
                return rows
        if isinstance(sql, str):
            query, names = _positional(sql)
            try:
                args = [params[name] for name in names] if names else []  # type: ignore[index]
            except (KeyError, TypeError):
                missing = [name for name in names if name not in (params or {})] or names
                raise exc.InvalidRequestError(
                    f"A value is required for bind parameter {missing[0]!r}"
                ) from None
            try:
                return await self._fetch_raw(query, args)
            except exc.DBAPIError as error:
                if not _is_query_canceled(error):
                    raise
                log.warning("read hit the statement timeout; retrying once")
                return await self._fetch_raw(query, args)
        try:
            return await self._fetch_once(sql, params)
        except exc.DBAPIError as error:
            if not _is_query_canceled(error):
                raise
            log.warning("read hit the statement timeout; retrying once")
            return await self._fetch_once(sql, params)

    async def _fetch_once(self, statement: TextClause, params: Mapping[str, Any] | None) -> Any:
        async with self._autocommit.connect() as conn:
            result = await conn.execute(statement, params or {})
            return result.all()

    async def _fetch_raw(self, query: str, args: list[Any]) -> list[Row]:
        """One statement on a pooled connection's asyncpg connection, outside any transaction
        (a pooled connection is returned rolled back, so asyncpg runs in autocommit): one the
        last reads kept (infra/kept_connections.py), else one checked out of the pool."""
        for listener in self.read_listeners:
            listener(query, args)
        kept = self._kept.take()
        if kept is not None:
            try:
                return await self._fetch_on(kept, query, args)
            except exc.DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                # It broke while kept (a restarted server, say): so may the others. Reads
                # are safe to run again, on a connection from the pool.
                self._kept.invalidate_all()
        # The pool's checkout (its events: idle timeout, gauges) may open a connection, which
        # SQLAlchemy's async adaptation runs in a greenlet.
        fairy = await greenlet_spawn(self._sync_engine.raw_connection)
        return await self._fetch_on(fairy, query, args)

    async def _fetch_on(self, fairy: Any, query: str, args: list[Any]) -> list[Row]:
        counter = current_counter.get()
        if counter is not None:
            counter.count += 1
        parent = recording_parent()
        started_ns = time.time_ns() if parent is not None else 0
        started = time.perf_counter()
        driver = fairy.driver_connection
        try:
            rows = await _fetch_rows(driver, query, args)
        except BaseException as error:
            observe_statement(
                started, parent, started_ns, query, error if isinstance(error, Exception) else None
            )
            healthy = isinstance(error, asyncpg.PostgresError) and not unavailable(error)
            wrapped = (
                _wrapped(error, query, args, fairy, self._dbapi, not healthy)
                if isinstance(error, Exception)
                else error
            )
            if healthy:
                await greenlet_spawn(fairy.close)  # the connection is fine; the statement was not
            else:
                # Cancelled mid-statement, or the connection failed: never hand it out again.
                # Outside a greenlet, invalidating terminates the connection without waiting.
                fairy.invalidate(error if isinstance(error, Exception) else None)
            if wrapped is error:
                raise
            raise wrapped from wrapped.orig
        elapsed_ms = (time.perf_counter() - started) * 1000
        observe_statement(started, parent, started_ns, query, None)
        try:
            if elapsed_ms >= self._slow_ms:
                log.warning(
                    "slow statement: %.1f ms\n%s\nplan:\n%s",
                    elapsed_ms,
                    query.strip(),
                    await _raw_plan(driver, query, args) if _plan_due(query) else PLAN_LOGGED,
                )
        finally:
            if not self._kept.keep(fairy):
                await greenlet_spawn(fairy.close)
        return rows

    def transaction(self, *, wakes_relays: bool = True) -> Any:
        """`async with db.transaction() as conn:` — one transaction, committed on success.
        `wakes_relays=False`: its commit skips `after_commit`. The relay's own passes write no
        outbox row; when their commits woke the relays too, every pass woke every relay, its
        own included, for another pass without end (behind a pooler, hundreds a second on an
        idle gateway)."""
        if self.after_commit is None or not wakes_relays:
            return self.engine.begin()
        return self._transaction_then(self.after_commit)

    @contextlib.asynccontextmanager
    async def _transaction_then(self, after_commit: Callable[[], None]) -> AsyncIterator[Any]:
        async with self.engine.begin() as conn:
            yield conn
        after_commit()

    def connect(self) -> Any:
        return self.engine.connect()

    async def dispose(self) -> None:
        await self._kept.release_all()
        await self.engine.dispose()

    async def reset_pool(self) -> None:
        """Start the pool afresh, its kept connections too: they may have died with the
        server."""
        self._kept.invalidate_all()
        await self.engine.dispose()  # a new pool takes the old one's place
        self._attach_pool()


_DIALECT = PGDialect_asyncpg()


@functools.lru_cache(maxsize=1024)
def _positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """`sql` with `$n` for its `:name` parameters, as SQLAlchemy's asyncpg dialect renders a
    `text()` (so `::casts` and escapes read the same), and the names in `$n` order. Loaders
    build the same few SQL strings again and again; each is converted once."""
    compiled = text(sql).compile(dialect=_DIALECT)
    return compiled.string, tuple(compiled.positiontup or ())


async def _fetch_rows(driver: Any, query: str, args: Sequence[Any]) -> list[Row]:
    try:
        return await driver.fetch(query, *args, record_class=Row)  # type: ignore[no-any-return]
    except TimeoutError as timed_out:
        # asyncpg's command_timeout (the statement timeout behind a transaction pooler) has
        # asked the server to cancel the statement: the same error as the server's timeout.
        raise asyncpg.exceptions.QueryCanceledError(
            "canceling statement due to statement timeout"
        ) from timed_out


async def _raw_plan(driver: Any, query: str, args: Sequence[Any]) -> str:
    """EXPLAIN (without running it again) on the connection the statement ran on."""
    if not query.lstrip().upper().startswith(("SELECT", "WITH", "INSERT", "UPDATE", "DELETE")):
        return "(no plan for this kind of statement)"
    try:
        return "\n".join(row[0] for row in await driver.fetch("EXPLAIN " + query, *args))
    except Exception as error:  # the plan is a courtesy; never fail the statement for it
        return f"(no plan: {type(error).__name__})"


def _wrapped(
    error: Exception, query: str, args: Sequence[Any], fairy: Any, dbapi: Any, invalid: bool
) -> Any:
    """`error` as SQLAlchemy would have raised it (`exc.DBAPIError` and its kinds, the
    driver's error as `.orig.__cause__`), so callers and `unavailable()` see one shape."""
    try:
        fairy.dbapi_connection._handle_exception(error)  # raises the DB-API translation
    except Exception as raised:
        translated = raised
    base = dbapi.Error
    if not isinstance(translated, base):
        return error
    return exc.DBAPIError.instance(
        query, tuple(args), translated, base, connection_invalidated=invalid
    )


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
        if "due to statement timeout" in str(current):
            continue  # a slow statement, not an outage (its cause may be asyncpg's TimeoutError)
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
