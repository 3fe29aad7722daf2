"""Campaigns' rows: createCampaign, updateCampaign and submitCampaign, each in the caller's
transaction with its CAMPAIGN_UPDATED event (the rules: domain/campaigns.py)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.campaigns import check_dates, check_fields, check_status_move
from domain.errors import Rejected
from domain.store.events import record_event
from domain.store.tables import CAMPAIGN_COLUMNS


async def create_campaign(
    conn: AsyncConnection, tenant_id: uuid.UUID, fields: dict[str, Any]
) -> Any:
    check_fields(fields)
    check_dates(fields.get("starts_on"), fields.get("ends_on"))
    row = (
        await conn.execute(
            text(
                "INSERT INTO campaigns AS t (id, tenant_id, name, goal, status, budget_cap_usd, "
                "starts_on, ends_on) VALUES (:id, :tenant_id, :name, :goal, 'DRAFT', "
                f":budget_cap_usd, :starts_on, :ends_on) RETURNING {CAMPAIGN_COLUMNS}"
            ),
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "name": fields["name"].strip(),
                "goal": fields.get("goal"),
                "budget_cap_usd": fields.get("budget_cap_usd"),
                "starts_on": fields.get("starts_on"),
                "ends_on": fields.get("ends_on"),
            },
        )
    ).one()
    await record_event(conn, tenant_id, "CAMPAIGN_UPDATED", campaign_id=row.id)
    return row._mapping


async def update_campaign(
    conn: AsyncConnection, tenant_id: uuid.UUID, campaign_id: uuid.UUID, changes: dict[str, Any]
) -> Any:
    """Apply `changes` (columns → values; `status` moves along TRANSITIONS)."""
    check_fields(changes)
    current = (
        await conn.execute(
            text(
                "SELECT status, starts_on, ends_on FROM campaigns "
                "WHERE id = :id AND tenant_id = :tenant_id FOR UPDATE"
            ),
            {"id": campaign_id, "tenant_id": tenant_id},
        )
    ).first()
    if current is None:
        raise Rejected("NOT_FOUND", "No campaign has this ID.", "id")
    status, starts_on, ends_on = current
    check_dates(changes.get("starts_on", starts_on), changes.get("ends_on", ends_on))
    check_status_move(status, changes.get("status"))
    assignments = ", ".join(f"{column} = :{column}" for column in changes)
    row = (
        await conn.execute(
            text(
                f"UPDATE campaigns t SET {assignments}{', ' if assignments else ''}"
                f"updated_at = now() WHERE id = :id RETURNING {CAMPAIGN_COLUMNS}"
            ),
            {**changes, "id": campaign_id},
        )
    ).one()
    await record_event(conn, tenant_id, "CAMPAIGN_UPDATED", campaign_id=campaign_id)
    return row._mapping


async def submit_campaign(
    conn: AsyncConnection, tenant_id: uuid.UUID, campaign_id: uuid.UUID
) -> Any:
    """DRAFT to ACTIVE, in one conditional update, so two submits cannot both succeed."""
    row = (
        await conn.execute(
            text(
                "UPDATE campaigns t SET status = 'ACTIVE', updated_at = now() "
                "WHERE id = :id AND tenant_id = :tenant_id AND status = 'DRAFT' "
                f"RETURNING {CAMPAIGN_COLUMNS}"
            ),
            {"id": campaign_id, "tenant_id": tenant_id},
        )
    ).first()
    if row is None:
        status = (
            await conn.execute(
                text("SELECT status FROM campaigns WHERE id = :id AND tenant_id = :tenant_id"),
                {"id": campaign_id, "tenant_id": tenant_id},
            )
        ).scalar()
        if status is None:
            raise Rejected("NOT_FOUND", "No campaign has this ID.", "id")
        raise Rejected(
            "INVALID_STATE", f"Only a DRAFT campaign can be submitted; it is {status}.", "id"
        )
    await record_event(conn, tenant_id, "CAMPAIGN_UPDATED", campaign_id=campaign_id)
    return row._mapping
