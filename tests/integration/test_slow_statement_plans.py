"""A slow statement's plan is logged once a minute, not with every slow run: on an
overloaded machine every statement is slow, and an EXPLAIN per statement adds to the load.
Each slow run is still logged with its time and text."""

from __future__ import annotations

import logging
import uuid

import pytest

from switchboard.infra.db import PLAN_LOGGED, Database, create_engine
from switchboard.settings import Settings
from tests.conftest import Servers


async def test_a_repeated_slow_statement_is_explained_once_and_logged_every_time(
    servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    marker = f"plans_{uuid.uuid4().hex}"  # a statement text no other test runs
    sql = f"SELECT slug, pg_sleep(0.06) IS NULL AS {marker} FROM tenants WHERE slug = :slug"
    db = Database(create_engine(Settings(db_slow_statement_ms=40), servers.database_url))
    try:
        with caplog.at_level(logging.WARNING, logger="switchboard.infra.db"):
            for _ in range(3):
                rows = await db.fetch(sql, {"slug": "acme"})
                assert [tuple(r) for r in rows] == [("acme", False)]
    finally:
        await db.dispose()
    slow = [r.getMessage() for r in caplog.records if marker in r.getMessage()]
    assert len(slow) == 3
    assert "tenants" in slow[0].split("plan:")[1]  # EXPLAIN's output
    assert all(message.endswith("plan:\n" + PLAN_LOGGED) for message in slow[1:])
