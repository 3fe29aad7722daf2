"""Recording tenant events: in the same transaction as the change they describe.

`tenant_events` is an outbox: switchboard/live/relay.py moves its rows into the tenant's
Redis stream after they commit (see domain/events.py for what an event is).
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import EVENT_TYPES


async def record_event(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    type_: str,
    *,
    approval_id: uuid.UUID | None = None,
    activity_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    campaign_id: uuid.UUID | None = None,
) -> None:
    assert type_ in EVENT_TYPES, type_
    await conn.execute(
        text(
            "INSERT INTO tenant_events "
            "(tenant_id, type, approval_id, activity_id, agent_id, campaign_id) "
            "VALUES (:tenant_id, :type, :approval_id, :activity_id, :agent_id, :campaign_id)"
        ),
        {
            "tenant_id": tenant_id,
            "type": type_,
            "approval_id": approval_id,
            "activity_id": activity_id,
            "agent_id": agent_id,
            "campaign_id": campaign_id,
        },
    )


async def activity_status_changed(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    activity_id: uuid.UUID,
    agent_id: uuid.UUID,
    campaign_id: uuid.UUID,
) -> None:
    """The event of every change of an activity's status."""
    await record_event(
        conn,
        tenant_id,
        "ACTIVITY_STATUS_CHANGED",
        activity_id=activity_id,
        agent_id=agent_id,
        campaign_id=campaign_id,
    )
