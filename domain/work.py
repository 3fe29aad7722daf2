"""Deliverables and activities: what new work must hold, and the states that take it.

domain/store/work.py creates the work under these rules.
"""

from __future__ import annotations

import uuid

from domain.errors import Rejected

MAX_TITLE = 300
MAX_INSTRUCTIONS = 20_000
# A campaign takes new deliverables and work until it is completed or archived.
OPEN_CAMPAIGN = {"DRAFT", "ACTIVE", "PAUSED"}
# A deliverable takes new work until it is approved, published or cancelled.
OPEN_DELIVERABLE = {"PLANNED", "IN_PROGRESS", "IN_REVIEW"}


def check_title(title: str) -> None:
    if not title.strip() or len(title) > MAX_TITLE:
        raise Rejected("INVALID", f"A title holds 1 to {MAX_TITLE} characters.", "input", "title")


def check_priority(priority: int) -> None:
    if not 1 <= priority <= 10:
        raise Rejected("INVALID", "Priority runs from 1 (most urgent) to 10.", "input", "priority")


def check_instructions(instructions: str | None) -> None:
    if instructions is not None and len(instructions) > MAX_INSTRUCTIONS:
        raise Rejected(
            "INVALID",
            f"Instructions hold at most {MAX_INSTRUCTIONS} characters.",
            "input",
            "instructions",
        )


def check_campaign_open(campaign_status: str) -> None:
    """Rejected unless a campaign in this status takes new deliverables."""
    if campaign_status not in OPEN_CAMPAIGN:
        raise Rejected(
            "INVALID_STATE",
            f"A {campaign_status} campaign takes no new deliverables.",
            "input",
            "campaignId",
        )


def check_takes_work(
    deliverable_status: str,
    campaign_status: str,
    agent_id: uuid.UUID | None,
    agent_status: str | None,
) -> None:
    """Rejected unless a deliverable (of a campaign) in these states takes a new activity for
    the tenant's agent of the role (`agent_id` None: the tenant has none)."""
    if deliverable_status not in OPEN_DELIVERABLE:
        raise Rejected(
            "INVALID_STATE",
            f"A {deliverable_status} deliverable takes no new work.",
            "input",
            "deliverableId",
        )
    if campaign_status not in OPEN_CAMPAIGN:
        raise Rejected(
            "INVALID_STATE", f"The campaign is {campaign_status}.", "input", "deliverableId"
        )
    if agent_id is None:
        raise Rejected("NOT_FOUND", "The tenant has no agent of this role.", "input", "role")
    if agent_status == "TERMINATED":
        raise Rejected("INVALID_STATE", "This role's agent is terminated.", "input", "role")
