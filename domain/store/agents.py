"""Agents' rows: setting an agent's status (setAgentStatus), and what the job queue holds of
each agent (its cap and status)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.agents import check_settable, check_status_move
from domain.errors import Rejected
from domain.store.events import record_event
from domain.store.reader import Reader
from domain.store.tables import AGENT_COLUMNS


async def set_agent_status(
    conn: AsyncConnection, tenant_id: uuid.UUID, agent_id: uuid.UUID, status: str
) -> Any:
    """Move the agent to `status`; its row of AGENT_COLUMNS, by name."""
    check_settable(status)
    current = (
        await conn.execute(
            text("SELECT status FROM agents WHERE id = :id AND tenant_id = :tenant_id FOR UPDATE"),
            {"id": agent_id, "tenant_id": tenant_id},
        )
    ).scalar()
    if current is None:
        raise Rejected("NOT_FOUND", "No agent has this ID.", "id")
    check_status_move(current, status)
    row = (
        await conn.execute(
            text(f"UPDATE agents t SET status = :status WHERE id = :id RETURNING {AGENT_COLUMNS}"),
            {"status": status, "id": agent_id},
        )
    ).one()
    await record_event(conn, tenant_id, "AGENT_STATUS_CHANGED", agent_id=agent_id)
    return row._mapping


QUEUE_SETTINGS_SQL = "SELECT id, tenant_id, concurrency, status FROM agents"


async def queue_settings(
    db: Reader,
    *,
    ids: Sequence[uuid.UUID] | None = None,
    tenants: Collection[uuid.UUID] | None = None,
) -> Sequence[Any]:
    """Rows of `id`, `tenant_id`, `concurrency` and `status` (by name) of the agents of `ids`,
    else of the agents of `tenants`, else of every agent."""
    if ids is not None:
        return await db.fetch(
            f"{QUEUE_SETTINGS_SQL} WHERE id = ANY(CAST(:ids AS uuid[]))", {"ids": list(ids)}
        )
    if tenants:
        return await db.fetch(
            f"{QUEUE_SETTINGS_SQL} WHERE tenant_id = ANY(CAST(:t AS uuid[]))",
            {"t": list(tenants)},
        )
    return await db.fetch(QUEUE_SETTINGS_SQL)
