"""Deliverables and activities: creating the work (the rules: domain/work.py).

Used by the mutations (createDeliverable, dispatchActivity, resolveApproval's revisions)
and by the planner job, so work is created the same way whoever asks for it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import Rejected
from domain.store.events import activity_status_changed
from domain.store.tables import ACTIVITY_COLUMNS, DELIVERABLE_COLUMNS
from domain.work import (
    check_campaign_open,
    check_instructions,
    check_priority,
    check_takes_work,
    check_title,
)


async def create_deliverable(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    campaign_id: uuid.UUID,
    title: str,
    kind: str,
    due_at: dt.datetime | None,
) -> Any:
    """A PLANNED deliverable of the campaign; its row of DELIVERABLE_COLUMNS, by name."""
    check_title(title)
    campaign = (
        await conn.execute(
            text("SELECT status FROM campaigns WHERE id = :id AND tenant_id = :tenant_id"),
            {"id": campaign_id, "tenant_id": tenant_id},
        )
    ).first()
    if campaign is None:
        raise Rejected("NOT_FOUND", "No campaign has this ID.", "input", "campaignId")
    check_campaign_open(campaign[0])
    row = (
        await conn.execute(
            text(
                "INSERT INTO deliverables AS t "
                "(id, tenant_id, campaign_id, title, kind, status, due_at) "
                "VALUES (:id, :tenant_id, :campaign_id, :title, :kind, 'PLANNED', :due_at) "
                f"RETURNING {DELIVERABLE_COLUMNS}"
            ),
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "campaign_id": campaign_id,
                "title": title.strip(),
                "kind": kind,
                "due_at": due_at,
            },
        )
    ).one()
    return row._mapping


async def create_activity(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    deliverable_id: uuid.UUID,
    role: str,
    priority: int,
    instructions: str | None,
    wake_reason: str,
    revision_of: uuid.UUID | None = None,
) -> Any:
    """A QUEUED activity of the tenant's agent of `role` on the deliverable; its row of
    ACTIVITY_COLUMNS and `campaign_id`, by name. The caller enqueues its job after commit."""
    check_priority(priority)
    check_instructions(instructions)
    found = (
        await conn.execute(
            text(
                "SELECT d.status, d.campaign_id, m.status, g.id, g.status "
                "FROM deliverables d JOIN campaigns m ON m.id = d.campaign_id "
                "LEFT JOIN agents g ON g.tenant_id = d.tenant_id AND g.role = :role "
                "WHERE d.id = :id AND d.tenant_id = :tenant_id FOR UPDATE OF d"
            ),
            {"id": deliverable_id, "tenant_id": tenant_id, "role": role},
        )
    ).first()
    if found is None:
        raise Rejected("NOT_FOUND", "No deliverable has this ID.", "input", "deliverableId")
    deliverable_status, campaign_id, campaign_status, agent_id, agent_status = found
    check_takes_work(deliverable_status, campaign_status, agent_id, agent_status)
    row = (
        await conn.execute(
            text(
                "INSERT INTO activities AS t (id, tenant_id, campaign_id, deliverable_id, "
                "agent_id, status, wake_reason, priority, instructions, revision_of) "
                "VALUES (:id, :tenant_id, :campaign_id, :deliverable_id, :agent_id, 'QUEUED', "
                ":wake_reason, :priority, :instructions, :revision_of) "
                f"RETURNING {ACTIVITY_COLUMNS}, t.campaign_id"
            ),
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "campaign_id": campaign_id,
                "deliverable_id": deliverable_id,
                "agent_id": agent_id,
                "wake_reason": wake_reason,
                "priority": priority,
                "instructions": instructions,
                "revision_of": revision_of,
            },
        )
    ).one()
    if deliverable_status == "PLANNED":
        await conn.execute(
            text("UPDATE deliverables SET status = 'IN_PROGRESS' WHERE id = :id"),
            {"id": deliverable_id},
        )
    await activity_status_changed(conn, tenant_id, row.id, agent_id, campaign_id)
    return row._mapping
