"""Campaigns: what a campaign's fields may hold, and the states it moves through.

    DRAFT ──submit──▶ ACTIVE ◀──▶ PAUSED
      │                 │           │
      └───────▶ ARCHIVED ◀── COMPLETED ◀┘ (ACTIVE and PAUSED complete; all but
                                          ARCHIVED archive)

Only submitCampaign takes a DRAFT campaign to ACTIVE, because submitting also starts the
planner; updateCampaign moves it along the other arrows. The writes: domain/store/campaigns.py.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from domain.errors import Rejected

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


def check_status_move(status: str, new_status: str | None) -> None:
    """Rejected unless updateCampaign may move a `status` campaign to `new_status` (None or
    the same status: no move)."""
    if new_status is not None and new_status != status and new_status not in TRANSITIONS[status]:
        hint = " Submit it to start it." if status == "DRAFT" and new_status == "ACTIVE" else ""
        raise Rejected(
            "INVALID_STATE",
            f"A {status} campaign cannot become {new_status}.{hint}",
            "input",
            "status",
        )
