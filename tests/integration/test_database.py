"""The database pool: its settings, the statement timeout and its one retry, the idle timeout.

The app's own engine is checked for the settings it was built with; the timeout behaviours
use engines of their own (tiny timeouts), built with `switchboard.infra.db.create_engine`, the
function the app uses, so that they never slow down or disturb the app's pool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from switchboard.infra.db import Database, StatementCounter, create_engine, current_counter
from switchboard.settings import Settings

PG_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def _timeout_ms(shown: str) -> float:
    """`SHOW statement_timeout` text ('10s', '50ms', '0') in milliseconds."""
    match = re.fullmatch(r"(\d+)\s*([a-z]*)", shown.strip())
    assert match, shown
    number, unit = match.groups()
    return int(number) * PG_UNITS_MS[unit or "ms"]


def _settings(base: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(base, **changes)


@pytest.fixture
async def tiny_timeout_db(settings: Settings) -> AsyncIterator[Database]:
    """A Database whose statements time out after 200 ms (far above what a trivial
    statement takes, even on a busy machine; far below the 5 s sleeps used here)."""
    tiny = _settings(settings, db_statement_timeout_ms=200)
    assert tiny.database_url is not None
    db = Database(create_engine(tiny, tiny.database_url))
    yield db
    await db.dispose()


@pytest.fixture
async def sequence(db_conn: asyncpg.Connection) -> AsyncIterator[str]:
    """A fresh sequence: `nextval` is not rolled back when a statement is cancelled, so a
    statement can tell its first execution from a retry, and how often it ran."""
    name = f"test_db_attempts_{uuid.uuid4().hex}"
    await db_conn.execute(f"CREATE SEQUENCE {name}")
    yield name
    await db_conn.execute(f"DROP SEQUENCE {name}")


async def _counted(db: Database, sql: str) -> tuple[StatementCounter, Any]:
    """Run `db.fetch(sql)` with a fresh statement counter; (counter, rows or the error)."""
    counter = StatementCounter()
    reset = current_counter.set(counter)
    try:
        outcome: Any = await db.fetch(sql)
    except Exception as error:
        outcome = error
    finally:
        current_counter.reset(reset)
    return counter, outcome


async def _sequence_calls(db_conn: asyncpg.Connection, name: str) -> int:
    """How many times nextval ran on the sequence (0 if never)."""
    last_value, is_called = await db_conn.fetchrow(f"SELECT last_value, is_called FROM {name}")
    return last_value if is_called else 0


# Settings


async def test_app_connections_have_the_configured_statement_timeout(
    app: Starlette, settings: Settings
) -> None:
    db: Database = app.state.db
    async with db.connect() as conn:
        shown = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
    assert _timeout_ms(shown) == settings.db_statement_timeout_ms
    # And reads through the app's own path see it too.
    rows = await db.fetch("SELECT current_setting('statement_timeout')")
    assert _timeout_ms(rows[0][0]) == settings.db_statement_timeout_ms


async def test_app_pool_matches_the_settings(app: Starlette, settings: Settings) -> None:
    pool = app.state.db.engine.pool
    assert pool.size() == settings.db_pool_size
    assert pool.timeout() == settings.db_pool_timeout_s
    assert pool._max_overflow == settings.db_max_overflow


async def test_statement_timeout_follows_the_settings(settings: Settings) -> None:
    custom = _settings(settings, db_statement_timeout_ms=1234)
    assert custom.database_url is not None
    engine = create_engine(custom, custom.database_url)
    try:
        async with engine.connect() as conn:
            shown = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
        assert _timeout_ms(shown) == 1234
    finally:
        await engine.dispose()


async def test_pool_bounds_connections_and_times_out_checkout(settings: Settings) -> None:
    """pool_size + max_overflow connections at once; one more waits pool_timeout, then fails."""
    small = _settings(settings, db_pool_size=2, db_max_overflow=1, db_pool_timeout_s=0.2)
    assert small.database_url is not None
    engine: AsyncEngine = create_engine(small, small.database_url)
    held = []
    try:
        for _ in range(3):
            conn = await engine.connect()
            await conn.execute(text("SELECT 1"))
            held.append(conn)
        pids = set()
        for conn in held:
            pids.add((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        assert len(pids) == 3
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(exc.TimeoutError):
            await engine.connect()
        waited = loop.time() - started
        assert 0.15 <= waited < 2.0
        # A returned connection is available again at once.
        await held.pop().close()
        conn = await engine.connect()
        held.append(conn)
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        for conn in held:
            await conn.close()
        await engine.dispose()


# Statement timeout


async def test_read_that_always_times_out_fails_after_exactly_two_attempts(
    tiny_timeout_db: Database, db_conn: asyncpg.Connection, sequence: str
) -> None:
    await tiny_timeout_db.fetch("SELECT 1")  # the pool's first connect is not counted below
    counter, outcome = await _counted(tiny_timeout_db, f"SELECT nextval('{sequence}'), pg_sleep(5)")
    assert isinstance(outcome, exc.DBAPIError), outcome
    assert isinstance(outcome.orig.__cause__, asyncpg.exceptions.QueryCanceledError)
    assert counter.count == 2
    assert await _sequence_calls(db_conn, sequence) == 2


async def test_read_that_times_out_once_succeeds_on_the_retry(
    tiny_timeout_db: Database, db_conn: asyncpg.Connection, sequence: str
) -> None:
    """The first execution sleeps past the timeout; the retry (nextval = 2) answers at once."""
    await tiny_timeout_db.fetch("SELECT 1")
    counter, outcome = await _counted(
        tiny_timeout_db,
        f"SELECT v, CASE WHEN v = 1 THEN pg_sleep(5) END IS NULL "
        f"FROM (SELECT nextval('{sequence}') AS v) s",
    )
    assert not isinstance(outcome, Exception), outcome
    assert [tuple(row) for row in outcome] == [(2, True)]
    assert counter.count == 2
    assert await _sequence_calls(db_conn, sequence) == 2


async def test_fast_read_runs_once(
    tiny_timeout_db: Database, db_conn: asyncpg.Connection, sequence: str
) -> None:
    await tiny_timeout_db.fetch("SELECT 1")
    counter, outcome = await _counted(tiny_timeout_db, f"SELECT nextval('{sequence}')")
    assert [tuple(row) for row in outcome] == [(1,)]
    assert counter.count == 1
    assert await _sequence_calls(db_conn, sequence) == 1


async def test_read_failing_otherwise_is_not_retried(
    tiny_timeout_db: Database, db_conn: asyncpg.Connection, sequence: str
) -> None:
    await tiny_timeout_db.fetch("SELECT 1")
    counter, outcome = await _counted(tiny_timeout_db, f"SELECT 1 / (nextval('{sequence}') - 1)")
    assert isinstance(outcome, exc.DBAPIError), outcome
    assert isinstance(outcome.orig.__cause__, asyncpg.exceptions.DivisionByZeroError)
    assert counter.count == 1
    assert await _sequence_calls(db_conn, sequence) == 1


async def test_pool_still_serves_after_a_timed_out_read(tiny_timeout_db: Database) -> None:
    _, outcome = await _counted(tiny_timeout_db, "SELECT pg_sleep(5)")
    assert isinstance(outcome, exc.DBAPIError)
    rows = await tiny_timeout_db.fetch("SELECT 41 + 1")
    assert rows[0][0] == 42


# Idle timeout


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()


async def test_connection_idle_past_the_idle_timeout_is_replaced(settings: Settings) -> None:
    idle = _settings(settings, db_pool_size=1, db_max_overflow=0, db_idle_timeout_s=0.3)
    assert idle.database_url is not None
    engine = create_engine(idle, idle.database_url)
    try:
        first = await _backend_pid(engine)
        # Checked out again at once: the same connection.
        assert await _backend_pid(engine) == first
        await asyncio.sleep(0.6)  # idle past the idle timeout: the behaviour under test
        second = await _backend_pid(engine)
        assert second != first
        # The replacement is itself reused while fresh.
        assert await _backend_pid(engine) == second
        # The pool holds one connection, so the old one was not kept.
        assert engine.pool.checkedin() == 1
    finally:
        await engine.dispose()


async def test_connection_idle_within_the_idle_timeout_is_kept(settings: Settings) -> None:
    idle = _settings(settings, db_pool_size=1, db_max_overflow=0, db_idle_timeout_s=30)
    assert idle.database_url is not None
    engine = create_engine(idle, idle.database_url)
    try:
        first = await _backend_pid(engine)
        await asyncio.sleep(0.6)
        assert await _backend_pid(engine) == first
    finally:
        await engine.dispose()


# Reads on the raw asyncpg connection (Database.fetch of an SQL string).


async def test_reads_take_named_parameters_and_give_rows_by_index_name_and_attribute(
    settings: Settings,
) -> None:
    assert settings.database_url is not None
    db = Database(create_engine(settings, settings.database_url))
    try:
        ids = [uuid.uuid4(), uuid.uuid4()]
        rows = await db.fetch(
            "SELECT CAST(:a AS int) + 1 AS b, cast(:ids AS uuid[]) AS ids, :a AS again, "
            "'{\"k\": 1}'::jsonb AS doc",
            {"a": 41, "ids": ids},
        )
        [row] = rows
        assert row[0] == row["b"] == row.b == 42
        assert row.ids == ids and row.again == 41
        assert row.doc == {"k": 1}  # JSON decoded, as SQLAlchemy's dialect does
        assert row[1:] == (ids, 41, {"k": 1}) and tuple(row) == (42, ids, 41, {"k": 1})
        assert row._mapping == {"b": 42, "ids": ids, "again": 41, "doc": {"k": 1}}
        with pytest.raises(AttributeError):
            _ = row.missing
        with pytest.raises(exc.InvalidRequestError, match="'a'"):
            await db.fetch("SELECT :a", {})
    finally:
        await db.dispose()


@pytest.mark.parametrize("cache_size", [0, 100])
async def test_prepared_statements_are_named_and_kept_unless_the_cache_is_off(
    settings: Settings, cache_size: int
) -> None:
    """Off (PgBouncer in transaction mode): no named prepared statement outlives its use,
    on the read path and through SQLAlchemy alike."""
    one = _settings(settings, db_pool_size=1, db_max_overflow=0, db_statement_cache_size=cache_size)
    assert one.database_url is not None
    db = Database(create_engine(one, one.database_url))
    try:
        for _ in range(2):
            assert [tuple(r) for r in await db.fetch("SELECT CAST(:x AS int)", {"x": 7})] == [(7,)]
            async with db.transaction() as conn:
                assert (await conn.execute(text("SELECT CAST(:x AS int)"), {"x": 8})).scalar() == 8
        [(named,)] = await db.fetch("SELECT count(*) FROM pg_prepared_statements")
        assert (named > 0) is (cache_size > 0)
    finally:
        await db.dispose()


async def test_a_cancelled_read_leaves_the_pool_serving(settings: Settings) -> None:
    one = _settings(settings, db_pool_size=1, db_max_overflow=0)
    assert one.database_url is not None
    db = Database(create_engine(one, one.database_url))
    try:
        read = asyncio.create_task(db.fetch("SELECT pg_sleep(5)"))
        waiting = await db_waits_for_sleep(db, read)
        assert waiting
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        assert [tuple(r) for r in await db.fetch("SELECT 1")] == [(1,)]
    finally:
        await db.dispose()


async def db_waits_for_sleep(db: Database, read: asyncio.Task[Any]) -> bool:
    """Yield to the loop until `read` runs its statement (its connection is checked out)."""
    pool = db.engine.sync_engine.pool
    for _ in range(10_000):
        if pool.checkedout() == 1:  # type: ignore[attr-defined]
            return True
        await asyncio.sleep(0)
    return False
