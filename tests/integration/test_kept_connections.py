"""Reads keep their connections for the next read, briefly, and recover when one breaks.

- A read's connection serves the next read without a checkout from the pool.
- Kept connections go back to the pool once idle for the keep time, and when the database is
  disposed; a pool of one keeps none, and a transaction the full pool would make wait gets a
  kept connection at once.
- A kept connection that broke (its backend terminated) costs nothing visible: the read
  runs again on a connection from the pool, and the other kept ones are dropped.

That a kept connection counts as idle in the pool's gauges, and taking it as a checkout, is
tests/e2e/test_observability_metrics.py's (no connection in use at the scrape).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from switchboard.infra.db import Database, create_engine
from switchboard.settings import Settings

PID = "SELECT pg_backend_pid() AS pid"


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    four = dataclasses.replace(settings, db_pool_size=4, db_max_overflow=0)
    assert four.database_url is not None
    database = Database(create_engine(four, four.database_url))
    yield database
    await database.dispose()


def _checked_out(db: Database) -> int:
    return int(db.engine.sync_engine.pool.checkedout())


async def _pids(db: Database, reads: int) -> list[int]:
    """The backend of each of `reads` reads running at once."""
    rows = await asyncio.gather(*(db.fetch(f"{PID}, pg_sleep(0.05)") for _ in range(reads)))
    return [r[0]["pid"] for r in rows]


async def _until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.05)  # polling an outcome, with a deadline


async def test_the_next_read_runs_on_the_kept_connection(db: Database) -> None:
    [first] = await db.fetch(PID)
    checkouts = _checked_out(db)
    assert checkouts == 1  # kept, not returned
    [second] = await db.fetch(PID)
    assert second["pid"] == first["pid"] and _checked_out(db) == 1


async def test_kept_connections_go_back_to_the_pool(db: Database) -> None:
    db._kept.keep_s = 0.2
    await _pids(db, 3)
    assert 1 <= _checked_out(db) <= 2  # half a pool of four at most
    await _until(lambda: _checked_out(db) == 0)

    await db.fetch(PID)
    assert _checked_out(db) == 1
    await db._kept.release_all()
    assert _checked_out(db) == 0


async def test_a_pool_of_one_keeps_nothing(settings: Settings) -> None:
    one = dataclasses.replace(settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout_s=2)
    assert one.database_url is not None
    db = Database(create_engine(one, one.database_url))
    try:
        await db.fetch(PID)
        assert _checked_out(db) == 0
        async with db.transaction() as conn:  # would wait out the pool's timeout if kept
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await db.dispose()


async def test_a_broken_kept_connection_is_replaced_unseen(
    db: Database, db_conn: asyncpg.Connection
) -> None:
    pids = set(await _pids(db, 2))
    assert len(pids) == 2 and _checked_out(db) == 2
    for pid in pids:
        assert await db_conn.fetchval("SELECT pg_terminate_backend($1)", pid)

    [row] = await db.fetch(PID)  # the kept connection is dead: the read runs again
    assert row["pid"] not in pids
    assert _checked_out(db) == 1  # the other dead one is dropped; the new one kept
    [again] = await db.fetch(PID)
    assert again["pid"] == row["pid"]


@pytest.mark.parametrize("restarted", [False, True], ids=["pool", "restarted pool"])
async def test_a_full_pool_hands_a_kept_connection_to_a_transaction(
    settings: Settings, restarted: bool
) -> None:
    two = dataclasses.replace(settings, db_pool_size=2, db_max_overflow=0, db_pool_timeout_s=0.5)
    assert two.database_url is not None
    db = Database(create_engine(two, two.database_url))
    db._kept.keep_s = 60.0  # kept far longer than the pool's timeout
    try:
        if restarted:  # as a read replica's pool is when the replica comes back
            await db.fetch(PID)
            await db.reset_pool()
            assert _checked_out(db) == 0
        await db.fetch(PID)
        assert _checked_out(db) == 1  # kept
        async with db.transaction() as first:
            await first.execute(text("SELECT 1"))
            assert _checked_out(db) == 2  # the pool is full
            async with db.transaction() as second:  # would time out after 0.5 s waiting
                assert (await second.execute(text("SELECT 2"))).scalar() == 2
    finally:
        await db.dispose()
