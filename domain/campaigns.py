"""Campaigns: what a campaign's fields may hold, and the states it moves through.

    DRAFT ──submit──▶ ACTIVE ◀──▶ PAUSED
      │                 │           │
      └───────▶ ARCHIVED ◀── COMPLETED ◀┘ (ACTIVE and PAUSED complete; all but
                                          ARCHIVED archive)

Only submitCampaign takes a DRAFT campaign to ACTIVE, because submitting also starts the
planner; updateCampaign moves it along the other arrows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import Rejected
from domain.events import record_event
from loaders.shapes import CAMPAIGN_COLUMNS

MAX_NAME = 200
MAX_GOAL = 5_000
MAX_BUDGET = Decimal("1000000000")

TRANSITIONS = {
    "DRAFT": {"ARCHIVED"},  # to ACTIVE only through submitCampaign
    "ACTIVE": {"PAUSED", "COMPLETED", "ARCHIVED"},
    "PAUSED": {"ACTIVE", "COMPLETED", "ARCHIVED"},
    "COMPLETED": {"ARCHIVED"},
    "ARCHIVED": set(),
}

# Columns a caller may change, and whether each may be set to null.
EDITABLE = {"name": False, "goal": True, "budget_cap_usd": True, "starts_on": True, "ends_on": True}
INPUT_NAMES = {
    "name": "name",
    "goal": "goal",
    "budget_cap_usd": "budgetCapUsd",
    "starts_on": "startsOn",
    "ends_on": "endsOn",
    "status": "status",
}


def check_fields(fields: dict[str, Any]) -> None:
    """Rejected for the first field that breaks a rule (only the fields given are checked)."""
    for column, may_be_null in EDITABLE.items():
        if column in fields and fields[column] is None and not may_be_null:
            raise Rejected(
                "INVALID", f"`{INPUT_NAMES[column]}` may not be null.", "input", INPUT_NAMES[column]
            )
    name = fields.get("name")
    if name is not None and (not name.strip() or len(name) > MAX_NAME):
        raise Rejected("INVALID", f"A name holds 1 to {MAX_NAME} characters.", "input", "name")
    goal = fields.get("goal")
    if goal is not None and len(goal) > MAX_GOAL:
        raise Rejected("INVALID", f"A goal holds at most {MAX_GOAL} characters.", "input", "goal")
    budget = fields.get("budget_cap_usd")
    if budget is not None and not (
        Decimal(0) <= budget <= MAX_BUDGET and budget == budget.quantize(Decimal("0.000001"))
    ):
        raise Rejected(
            "INVALID",
            "A budget is between 0 and 1,000,000,000 with at most 6 decimals.",
            "input",
            "budgetCapUsd",
        )


def check_dates(starts_on: dt.date | None, ends_on: dt.date | None) -> None:
    if starts_on and ends_on and ends_on < starts_on:
        raise Rejected("INVALID", "`endsOn` may not be before `startsOn`.", "input", "endsOn")


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
    await record_event(conn, tenant_id, "CAMPAIGN_UPDATED", campaign_id=row[0])
    return row


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
    new_status = changes.get("status")
    if new_status is not None and new_status != status and new_status not in TRANSITIONS[status]:
        hint = " Submit it to start it." if status == "DRAFT" and new_status == "ACTIVE" else ""
        raise Rejected(
            "INVALID_STATE",
            f"A {status} campaign cannot become {new_status}.{hint}",
            "input",
            "status",
        )
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
    return row


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
    return row
