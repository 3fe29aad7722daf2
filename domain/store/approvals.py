"""Resolving approvals (resolveApproval): one conditional UPDATE decides, then the activity,
the deliverable, the events and, for REQUEST_REVISION, the revision's activity, all in the
caller's transaction (the rules: domain/approvals.py)."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.approvals import Resolution, decide, revision_instructions
from domain.errors import Rejected
from domain.store.events import activity_status_changed, record_event
from domain.store.tables import APPROVAL_COLUMNS
from domain.store.work import create_activity


async def resolve_approval(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    approval_id: uuid.UUID,
    decision: str,
    comment: str | None,
    resolved_by: uuid.UUID,
) -> Resolution:
    approval_status, activity_status, deliverable_status = decide(decision, comment)
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
            {"status": activity_status, "id": approval.activity_id},
        )
    ).one()
    deliverable_id, agent_id, output = activity
    await conn.execute(
        text("UPDATE deliverables SET status = :status WHERE id = :id"),
        {"status": deliverable_status, "id": deliverable_id},
    )
    campaign_id = approval.campaign_id
    await record_event(
        conn,
        tenant_id,
        "APPROVAL_RESOLVED",
        approval_id=approval_id,
        activity_id=approval.activity_id,
        campaign_id=campaign_id,
    )
    await activity_status_changed(conn, tenant_id, approval.activity_id, agent_id, campaign_id)
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
            revision_of=approval.activity_id,
        )
    return Resolution(approval=approval._mapping, revision=revision)
