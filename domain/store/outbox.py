"""The outbox's side of the relay: taking the relay's turn, reading the oldest unrelayed
rows of both outboxes, marking them relayed, and deleting old relayed rows. Each function
runs in the caller's transaction (switchboard/live/relay.py holds one per pass)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

OUTBOXES = ("tenant_events", "activity_stream_events")
RELAY_LOCK = 0x5B_0E7B  # the relay's advisory lock (a constant no other code uses)

_TENANT_ROWS = text(
    "SELECT id, tenant_id, type, approval_id, activity_id, agent_id, campaign_id, occurred_at "
    "FROM tenant_events WHERE NOT relayed ORDER BY id LIMIT :n"
)
_STREAM_ROWS = text(
    "SELECT id, tenant_id, activity_id, kind, text, status, occurred_at "
    "FROM activity_stream_events WHERE NOT relayed ORDER BY id LIMIT :n"
)


async def take_relay_turn(conn: AsyncConnection, *, wait: bool) -> bool:
    """The relays of all processes take turns (a transaction-scoped advisory lock, so it
    works behind a transaction pooler); False when another holds it and `wait` is off."""
    lock = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    got = (await conn.execute(text(f"SELECT {lock}(:k)"), {"k": RELAY_LOCK})).scalar()
    return got is not False


async def unrelayed(conn: AsyncConnection, limit: int) -> tuple[list[Any], list[Any]]:
    """The oldest unrelayed rows of `tenant_events` and of `activity_stream_events`."""
    tenant_rows = (await conn.execute(_TENANT_ROWS, {"n": limit})).all()
    stream_rows = (await conn.execute(_STREAM_ROWS, {"n": limit})).all()
    return tenant_rows, stream_rows


async def mark_relayed(conn: AsyncConnection, table: str, ids: list[int]) -> None:
    if ids:
        await conn.execute(
            text(f"UPDATE {table} SET relayed = true WHERE id = ANY(:ids)"), {"ids": ids}
        )


async def purge_relayed(conn: AsyncConnection, table: str, keep_days: int) -> None:
    """Delete `table`'s relayed rows older than `keep_days`."""
    await conn.execute(
        text(
            f"DELETE FROM {table} WHERE relayed "
            "AND occurred_at < now() - make_interval(days => :days)"
        ),
        {"days": keep_days},
    )
