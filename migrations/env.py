"""Alembic environment: runs the migrations over the gateway's own async engine URL."""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    # connect_args: unnamed statements behind a transaction pooler (switchboard/infra/migrate.py).
    engine = create_async_engine(
        config.get_main_option("sqlalchemy.url"),
        connect_args=config.attributes.get("connect_args", {}),
    )
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


asyncio.run(_main())
