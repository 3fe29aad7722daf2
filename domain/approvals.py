"""Resolving approvals: only a PENDING approval can be resolved, and only once.

The decision is one conditional UPDATE (`… WHERE status = 'PENDING'`), so of two resolves
arriving at the same moment exactly one succeeds; the other finds the approval resolved
and gets INVALID_STATE. What follows each decision:
- APPROVE: the activity COMPLETED, the deliverable APPROVED;
- REJECT: the activity and the deliverable CANCELLED;
- REQUEST_REVISION: the activity REVISING, and a new activity for the same agent with wake
  reason REVISION_REQUESTED and priority 1, carrying only the comment and the previous
  output (not the whole history). The caller enqueues its job after the commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import Rejected
from domain.events import activity_status_changed, record_event
from domain.work import create_activity
from loaders.shapes import APPROVAL_COLUMNS

MAX_COMMENT = 5_000

DECISIONS = {
    # decision: (approval status, activity status, deliverable status or None to keep)
    "APPROVE": ("APPROVED", "COMPLETED", "APPROVED"),
    "REJECT": ("REJECTED", "CANCELLED", "CANCELLED"),
    "REQUEST_REVISION": ("REVISION_REQUESTED", "REVISING", "IN_PROGRESS"),
}


@dataclass(frozen=True)
class Resolution:
    approval: Any  # a row of APPROVAL_COLUMNS
    revision: Any | None  # the new activity's row, for REQUEST_REVISION


def revision_instructions(comment: str, previous_output: str | None) -> str:
    return (
        "Revise your previous output as the reviewer asks.\n\n"
        f"Reviewer's comment:\n{comment}\n\n"
        f"Previous output:\n{previous_output or '(none)'}"
    )


async def resolve_approval(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    approval_id: uuid.UUID,
    decision: str,
    comment: str | None,
    resolved_by: uuid.UUID,
) -> Resolution:
    if comment is not None and len(comment) > MAX_COMMENT:
        raise Rejected(
            "INVALID", f"A comment holds at most {MAX_COMMENT} characters.", "input", "comment"
        )
    if decision == "REQUEST_REVISION" and not (comment and comment.strip()):
        raise Rejected("INVALID", "Say what to revise in `comment`.", "input", "comment")
    approval_status, activity_status, deliverable_status = DECISIONS[decision]
    approval = (
        await conn.execute(
            text(
                "UPDATE approvals t SET status = :status, resolved_at = now(), "
                "resolved_by = :resolved_by, comment = :comment "
                "WHERE t.id = :id AND t.tenant_id = :tenant_id AND t.status = 'PENDING' "
                f"RETURNING {APPROVAL_COLUMNS}, t.campaign_id"
            ),
            {
                "status": approval_status,
                "resolved_by": resolved_by,
                "comment": comment,
                "id": approval_id,
                "tenant_id": tenant_id,
            },
        )
    ).first()
    if approval is None:
        status = (
            await conn.execute(
                text("SELECT status FROM approvals WHERE id = :id AND tenant_id = :tenant_id"),
                {"id": approval_id, "tenant_id": tenant_id},
            )
        ).scalar()
        if status is None:
            raise Rejected("NOT_FOUND", "No approval has this ID.", "input", "approvalId")
        raise Rejected(
            "INVALID_STATE", f"This approval is already {status}.", "input", "approvalId"
        )
    activity = (
        await conn.execute(
            text(
                "UPDATE activities SET status = :status, completed_at = CASE "
                "WHEN :status IN ('COMPLETED', 'CANCELLED') THEN now() ELSE completed_at END "
                "WHERE id = :id RETURNING deliverable_id, agent_id, output"
            ),
            {"status": activity_status, "id": approval[1]},
        )
    ).one()
    deliverable_id, agent_id, output = activity
    await conn.execute(
        text("UPDATE deliverables SET status = :status WHERE id = :id"),
        {"status": deliverable_status, "id": deliverable_id},
    )
    campaign_id = approval[-1]
    await record_event(
        conn,
        tenant_id,
        "APPROVAL_RESOLVED",
        approval_id=approval_id,
        activity_id=approval[1],
        campaign_id=campaign_id,
    )
    await activity_status_changed(conn, tenant_id, approval[1], agent_id, campaign_id)
    revision = None
    if decision == "REQUEST_REVISION":
        role = (
            await conn.execute(text("SELECT role FROM agents WHERE id = :id"), {"id": agent_id})
        ).scalar_one()
        revision = await create_activity(
            conn,
            tenant_id,
            deliverable_id,
            role,
            1,
            revision_instructions(comment or "", output),
            "REVISION_REQUESTED",
            revision_of=approval[1],
        )
    return Resolution(approval=approval[:-1], revision=revision)
