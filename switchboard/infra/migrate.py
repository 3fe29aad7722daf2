"""Schema migrations: bring a database to the newest Alembic revision.

The commands migrate over DATABASE_DIRECT_URL when it is set (`migrate`): DDL takes
locks and may run long, which belongs on a session of its own, not on a transaction
pooler's shared server connections. Without it they migrate through DATABASE_URL, with
unnamed statements when SWITCHBOARD_DB_POOLER is `transaction` (nothing in the migrations
needs a session: each runs in a transaction of its own)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from switchboard.infra.db import command_connect_args
from switchboard.settings import PROJECT_DIR, Settings


def alembic_config(database_url: str, connect_args: dict[str, Any] | None = None) -> Config:
    config = Config(str(PROJECT_DIR / "alembic.ini"))
    config.attributes["connect_args"] = connect_args or {}  # read by migrations/env.py
    config.set_main_option("script_location", str(PROJECT_DIR / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str, connect_args: dict[str, Any] | None = None) -> None:
    """Blocking; Alembic's env.py runs its own event loop, so call it outside of one."""
    command.upgrade(alembic_config(database_url, connect_args), "head")


def migrate(settings: Settings, database_url: str) -> None:
    """`upgrade_to_head` as the commands run it: the direct URL if any (see above)."""
    if settings.database_direct_url:
        upgrade_to_head(settings.database_direct_url)
    else:
        upgrade_to_head(database_url, command_connect_args(settings))


async def upgrade_to_head_async(
    database_url: str, connect_args: dict[str, Any] | None = None
) -> None:
    await asyncio.to_thread(upgrade_to_head, database_url, connect_args)


async def is_at_head(engine: AsyncEngine, database_url: str) -> bool:
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    async with engine.connect() as conn:
        current = await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
        )
    return current == head
