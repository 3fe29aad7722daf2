"""Statements slower than the threshold are logged with their text and their plan."""

from __future__ import annotations

import logging

import pytest

from switchboard.infra.db import Database, create_engine
from switchboard.settings import Settings
from tests.conftest import Servers


async def test_a_slow_statement_is_logged_with_its_plan_and_still_answers(
    servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(create_engine(Settings(db_slow_statement_ms=50), servers.database_url))
    try:
        with caplog.at_level(logging.WARNING, logger="switchboard.infra.db"):
            rows = await db.fetch(
                "SELECT slug, pg_sleep(0.08) IS NULL FROM tenants WHERE slug = :slug",
                {"slug": "acme"},
            )
            quick = await db.fetch("SELECT slug FROM tenants WHERE slug = :slug", {"slug": "acme"})
    finally:
        await db.dispose()
    assert [tuple(r) for r in rows] == [("acme", False)]
    assert [tuple(r) for r in quick] == [("acme",)]
    slow = [r.getMessage() for r in caplog.records if "slow statement" in r.getMessage()]
    assert len(slow) == 1  # the quick one is not logged
    assert "pg_sleep(0.08)" in slow[0]
    assert "plan:" in slow[0] and "tenants" in slow[0].split("plan:")[1]
