"""Tenant events: recorded in the same transaction as the change they describe.

An event names its type and the objects it concerns; the live-events feature resolves those
objects when it delivers the event, so an event never carries stale copies.
`tenant_events` is an outbox: switchboard/live/relay.py moves its rows into the tenant's
Redis stream after they commit. (An activity's stream events need no call here: triggers
on `activities` write them, see migrations/versions/0005_live_outbox.py.)
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.enums import TenantEventType

EVENT_TYPES = frozenset(TenantEventType)

Position = tuple[int, int]


def parse_position(value: str) -> Position:
    """An event's position in its log (a Redis stream entry ID, `<ms>-<seq>`) as a
    comparable pair; ValueError for anything else."""
    ms, sep, seq = value.partition("-")
    if not (sep and ms.isdigit() and seq.isdigit()) or len(value) > 42:
        raise ValueError(value)
    return int(ms), int(seq)


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
