"""The run of one activity, as SQL: start, streamed output, LLM calls, budgets, and its end
(the states and rules: domain/runs.py).

Each function works in the caller's transaction and records the tenant events of the change
it makes. The job worker (tasks/runner.py) and the agent runtimes' mutations
(reportActivityProgress, recordLlmCall) call the same functions.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.budgets import BUDGET_EXCEEDED
from domain.errors import Rejected
from domain.llm_calls import NewLlmCall, RecordedCall
from domain.runs import (
    APPROVAL_TTL,
    MAX_OUTPUT,
    PLAN,
    Run,
    escalation_instructions,
    failure_reason,
    plan_due_dates,
    plan_instructions,
    risk_level,
)
from domain.store.budgets import check_budgets
from domain.store.events import activity_status_changed, record_event
from domain.store.llm_calls import record_llm_call
from domain.store.reader import Reader
from domain.store.tables import ACTIVITY_COLUMNS
from domain.store.work import create_activity, create_deliverable

log = logging.getLogger(__name__)

# Its columns are named as Run's fields.
RUN_SELECT = """
SELECT a.id AS activity_id, a.tenant_id, a.agent_id, a.campaign_id, a.deliverable_id,
       a.priority, a.instructions, g.role, g.model, g.max_turns_per_run AS max_turns,
       g.status AS agent_status, d.title AS deliverable_title, d.kind AS deliverable_kind,
       m.name AS campaign_name, m.goal AS campaign_goal, m.ends_on AS campaign_ends_on
FROM {source} a
JOIN agents g ON g.id = a.agent_id
JOIN deliverables d ON d.id = a.deliverable_id
JOIN campaigns m ON m.id = a.campaign_id
"""


def _run(row: Any) -> Run:
    return Run(**row._mapping)


async def load_run(conn: AsyncConnection, tenant_id: uuid.UUID, activity_id: uuid.UUID) -> Run:
    row = (
        await conn.execute(
            text(RUN_SELECT.format(source="activities") + " WHERE a.id = :id AND a.tenant_id = :t"),
            {"id": activity_id, "t": tenant_id},
        )
    ).one()
    return _run(row)


async def start_run(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    activity_id: uuid.UUID,
    *,
    restart: bool = True,
) -> Run | None:
    """QUEUED (or, with `restart`, RUNNING: a job delivered again) to RUNNING, with
    dispatchedAt now and the output cleared. None when the activity is in no such state
    (cancelled, finished, unknown) or its agent is terminated (then it is CANCELLED)."""
    allowed = "('QUEUED', 'RUNNING')" if restart else "('QUEUED')"
    row = (
        await conn.execute(
            text(
                "WITH a AS (UPDATE activities t SET status = 'RUNNING', dispatched_at = now(), "
                "first_token_at = NULL, output = NULL, completed_at = NULL "
                "WHERE t.id = :id AND t.tenant_id = :t AND t.status IN " + allowed + " "
                "AND NOT EXISTS (SELECT 1 FROM agents g WHERE g.id = t.agent_id "
                "AND g.status = 'TERMINATED') RETURNING t.*)" + RUN_SELECT.format(source="a")
            ),
            {"id": activity_id, "t": tenant_id},
        )
    ).first()
    if row is None:
        await cancel_if_terminated(conn, tenant_id, activity_id)
        return None
    run = _run(row)
    await activity_status_changed(conn, tenant_id, activity_id, run.agent_id, run.campaign_id)
    changed = (
        await conn.execute(
            text(
                "UPDATE agents SET status = 'RUNNING' WHERE id = :id AND status = 'IDLE' "
                "RETURNING id"
            ),
            {"id": run.agent_id},
        )
    ).first()
    if changed:
        await record_event(conn, tenant_id, "AGENT_STATUS_CHANGED", agent_id=run.agent_id)
    return run


async def cancel_if_terminated(
    conn: AsyncConnection, tenant_id: uuid.UUID, activity_id: uuid.UUID
) -> bool:
    """A waiting or running activity of a terminated agent is CANCELLED."""
    row = (
        await conn.execute(
            text(
                "UPDATE activities t SET status = 'CANCELLED', completed_at = now() "
                "FROM agents g WHERE t.id = :id AND t.tenant_id = :t AND g.id = t.agent_id "
                "AND g.status = 'TERMINATED' AND t.status IN ('QUEUED', 'RUNNING') "
                "RETURNING t.agent_id, t.campaign_id"
            ),
            {"id": activity_id, "t": tenant_id},
        )
    ).first()
    if row is None:
        return False
    await activity_status_changed(conn, tenant_id, activity_id, row.agent_id, row.campaign_id)
    return True


async def cancel_waiting(
    conn: AsyncConnection, tenant_id: uuid.UUID, agent_id: uuid.UUID
) -> list[uuid.UUID]:
    """Every QUEUED activity of the agent CANCELLED (the agent was terminated)."""
    rows = (
        await conn.execute(
            text(
                "UPDATE activities SET status = 'CANCELLED', completed_at = now() "
                "WHERE tenant_id = :t AND agent_id = :a AND status = 'QUEUED' "
                "RETURNING id, campaign_id"
            ),
            {"t": tenant_id, "a": agent_id},
        )
    ).all()
    for activity_id, campaign_id in rows:
        await activity_status_changed(conn, tenant_id, activity_id, agent_id, campaign_id)
    return [r[0] for r in rows]


async def cancel_activities(
    conn: AsyncConnection, activity_ids: list[uuid.UUID], reason: str
) -> int:
    """QUEUED activities whose jobs were dropped (duplicates) are CANCELLED."""
    if not activity_ids:
        return 0
    rows = (
        await conn.execute(
            text(
                "UPDATE activities SET status = 'CANCELLED', completed_at = now(), "
                "failure_reason = :reason WHERE id = ANY(CAST(:ids AS uuid[])) "
                "AND status = 'QUEUED' RETURNING id, tenant_id, agent_id, campaign_id"
            ),
            {"ids": activity_ids, "reason": reason},
        )
    ).all()
    for activity_id, tenant_id, agent_id, campaign_id in rows:
        await activity_status_changed(conn, tenant_id, activity_id, agent_id, campaign_id)
    return len(rows)


# Append a chunk to a RUNNING activity's output in one statement (autocommit callers:
# one round trip). With :agent_id it also checks the activity is that agent's.
APPEND_SQL = f"""
UPDATE activities t SET output = coalesce(t.output, '') || :chunk,
       first_token_at = coalesce(t.first_token_at, now())
WHERE t.id = :id AND t.tenant_id = :t AND t.status = 'RUNNING'
  AND (CAST(:agent_id AS uuid) IS NULL OR t.agent_id = :agent_id)
  AND coalesce(length(t.output), 0) + length(:chunk) <= {MAX_OUTPUT}
RETURNING {ACTIVITY_COLUMNS}
"""


def append_params(
    tenant_id: uuid.UUID, activity_id: uuid.UUID, chunk: str, agent_id: uuid.UUID | None = None
) -> dict[str, Any]:
    return {"chunk": chunk, "id": activity_id, "t": tenant_id, "agent_id": agent_id}


async def append_output(
    conn: AsyncConnection, tenant_id: uuid.UUID, activity_id: uuid.UUID, chunk: str
) -> dt.datetime | None:
    """Append to a RUNNING activity's output (firstTokenAt set by the first chunk); returns
    firstTokenAt, or None when the activity is not running (it was stopped)."""
    return (
        await conn.execute(
            text(
                "UPDATE activities SET output = coalesce(output, '') || :chunk, "
                "first_token_at = coalesce(first_token_at, now()) "
                "WHERE id = :id AND tenant_id = :t AND status = 'RUNNING' "
                "AND coalesce(length(output), 0) + length(:chunk) <= :max "
                "RETURNING first_token_at"
            ),
            {"chunk": chunk, "id": activity_id, "t": tenant_id, "max": MAX_OUTPUT},
        )
    ).scalar()


async def running_state(
    conn: AsyncConnection, tenant_id: uuid.UUID, activity_id: uuid.UUID
) -> tuple[str, str] | None:
    """(activity status, agent status)."""
    row = (
        await conn.execute(
            text(
                "SELECT a.status AS activity_status, g.status AS agent_status "
                "FROM activities a JOIN agents g ON g.id = a.agent_id "
                "WHERE a.id = :id AND a.tenant_id = :t"
            ),
            {"id": activity_id, "t": tenant_id},
        )
    ).first()
    return (row.activity_status, row.agent_status) if row else None


async def record_call(
    conn: AsyncConnection, tenant_id: uuid.UUID, call: NewLlmCall, campaign_id: uuid.UUID
) -> RecordedCall | None:
    """One LLM call with every spend rollup (one statement), and a SPEND_UPDATED event."""
    recorded = await record_llm_call(conn, tenant_id, call)
    if recorded is not None:
        await record_event(
            conn, tenant_id, "SPEND_UPDATED", activity_id=call.activity_id, campaign_id=campaign_id
        )
    return recorded


async def enforce_budgets(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    campaign_id: uuid.UUID,
    agent_id: uuid.UUID,
    activity_id: uuid.UUID,
) -> str | None:
    """Check the three caps before a turn; when one is reached, the activity stops FAILED
    with BUDGET_EXCEEDED and the exceeded cap ("activity", "campaign", "tenant") is
    returned."""
    check = await check_budgets(conn, tenant_id, campaign_id, agent_id, activity_id)
    if check.ok:
        return None
    await fail_run(conn, tenant_id, activity_id, BUDGET_EXCEEDED)
    return check.exceeded


async def fail_run(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    activity_id: uuid.UUID,
    reason: str,
    *,
    status: str = "FAILED",
) -> Any | None:
    """A QUEUED or RUNNING activity ends FAILED (or ESCALATED) with its reason; its row of
    ACTIVITY_COLUMNS and `campaign_id`, by name, or None if it was in no such state."""
    row = (
        await conn.execute(
            text(
                "UPDATE activities t SET status = :status, failure_reason = :reason, "
                "completed_at = now() WHERE t.id = :id AND t.tenant_id = :t "
                "AND t.status IN ('QUEUED', 'RUNNING') "
                f"RETURNING {ACTIVITY_COLUMNS}, t.campaign_id"
            ),
            {
                "status": status,
                "reason": failure_reason(reason),
                "id": activity_id,
                "t": tenant_id,
            },
        )
    ).first()
    if row is None:
        return None
    agent_id, campaign_id = row.agent_id, row.campaign_id
    await activity_status_changed(conn, tenant_id, activity_id, agent_id, campaign_id)
    if status == "ESCALATED":
        await record_event(
            conn,
            tenant_id,
            "ESCALATION_CREATED",
            activity_id=activity_id,
            agent_id=agent_id,
            campaign_id=campaign_id,
        )
    await _agent_idle_unless_busy(conn, tenant_id, agent_id)
    return row._mapping


async def requeue(conn: AsyncConnection, tenant_id: uuid.UUID, activity_id: uuid.UUID) -> bool:
    """A RUNNING activity whose attempt failed waits (QUEUED) for its retry, or for its job
    again when Redis lost the job while it ran."""
    row = (
        await conn.execute(
            text(
                "UPDATE activities SET status = 'QUEUED' WHERE id = :id AND tenant_id = :t "
                "AND status = 'RUNNING' RETURNING agent_id, campaign_id"
            ),
            {"id": activity_id, "t": tenant_id},
        )
    ).first()
    if row is None:
        return False
    await activity_status_changed(conn, tenant_id, activity_id, row.agent_id, row.campaign_id)
    await _agent_idle_unless_busy(conn, tenant_id, row.agent_id)
    return True


async def finish_run(conn: AsyncConnection, run: Run) -> Any | None:
    """A RUNNING activity's work is done: AWAITING_APPROVAL with a PENDING approval expiring
    in 48 h (risk from role and kind), its deliverable IN_REVIEW; the planner's activity is
    COMPLETED without approval. Returns the approval's id (None for the planner), or raises
    LookupError if the activity is no longer running."""
    planner = run.role == "ACTIVITY_PLANNER"
    status = "COMPLETED" if planner else "AWAITING_APPROVAL"
    updated = (
        await conn.execute(
            text(
                "UPDATE activities SET status = :status, failure_reason = NULL, "
                "completed_at = CASE WHEN :status = 'COMPLETED' THEN now() END "
                "WHERE id = :id AND tenant_id = :t AND status = 'RUNNING' RETURNING id"
            ),
            {"status": status, "id": run.activity_id, "t": run.tenant_id},
        )
    ).first()
    if updated is None:
        raise LookupError("the activity is no longer running")
    await activity_status_changed(
        conn, run.tenant_id, run.activity_id, run.agent_id, run.campaign_id
    )
    approval_id = None
    if planner:
        await conn.execute(
            text(
                "UPDATE deliverables SET status = 'APPROVED' WHERE id = :id "
                "AND status IN ('PLANNED', 'IN_PROGRESS', 'IN_REVIEW')"
            ),
            {"id": run.deliverable_id},
        )
    else:
        approval_id = uuid.uuid4()
        await conn.execute(
            text(
                "INSERT INTO approvals (id, tenant_id, campaign_id, activity_id, status, "
                "risk_level, requested_at, expires_at) VALUES (:id, :t, :campaign, :activity, "
                "'PENDING', :risk, now(), now() + :ttl)"
            ),
            {
                "id": approval_id,
                "t": run.tenant_id,
                "campaign": run.campaign_id,
                "activity": run.activity_id,
                "risk": risk_level(run.role, run.deliverable_kind),
                "ttl": APPROVAL_TTL,
            },
        )
        await conn.execute(
            text(
                "UPDATE deliverables SET status = 'IN_REVIEW' WHERE id = :id "
                "AND status IN ('PLANNED', 'IN_PROGRESS')"
            ),
            {"id": run.deliverable_id},
        )
        await record_event(
            conn,
            run.tenant_id,
            "APPROVAL_CREATED",
            approval_id=approval_id,
            activity_id=run.activity_id,
            campaign_id=run.campaign_id,
        )
    await _agent_idle_unless_busy(conn, run.tenant_id, run.agent_id)
    return approval_id


async def _agent_idle_unless_busy(
    conn: AsyncConnection, tenant_id: uuid.UUID, agent_id: uuid.UUID
) -> None:
    """A RUNNING agent with no other running activity goes back to IDLE. The agent's row is
    locked first, so of two runs ending at once the later one sees the earlier's change."""
    await conn.execute(text("SELECT 1 FROM agents WHERE id = :id FOR UPDATE"), {"id": agent_id})
    changed = (
        await conn.execute(
            text(
                "UPDATE agents g SET status = 'IDLE' WHERE g.id = :id AND g.status = 'RUNNING' "
                "AND NOT EXISTS (SELECT 1 FROM activities a WHERE a.agent_id = :id "
                "AND a.status = 'RUNNING') RETURNING id"
            ),
            {"id": agent_id},
        )
    ).first()
    if changed:
        await record_event(conn, tenant_id, "AGENT_STATUS_CHANGED", agent_id=agent_id)


async def dead_letter(
    conn: AsyncConnection, tenant_id: uuid.UUID, activity_id: uuid.UUID, reason: str
) -> uuid.UUID | None:
    """The last retry failed: the activity FAILED with its reason, its agent ERROR (unless
    paused or terminated), and a new ESCALATED activity for a person on the same
    deliverable, announced by an ESCALATION_CREATED event. Returns the new activity's id."""
    failed = await fail_run(conn, tenant_id, activity_id, reason)
    if failed is None:
        return None
    agent_id, campaign_id = failed["agent_id"], failed["campaign_id"]
    errored = (
        await conn.execute(
            text(
                "UPDATE agents SET status = 'ERROR' WHERE id = :id "
                "AND status IN ('IDLE', 'RUNNING') RETURNING id"
            ),
            {"id": agent_id},
        )
    ).first()
    if errored:
        await record_event(conn, tenant_id, "AGENT_STATUS_CHANGED", agent_id=agent_id)
    escalation_id = uuid.uuid4()
    await conn.execute(
        text(
            "INSERT INTO activities (id, tenant_id, campaign_id, deliverable_id, agent_id, "
            "status, wake_reason, priority, instructions, revision_of, completed_at) "
            "SELECT :new, tenant_id, campaign_id, deliverable_id, agent_id, 'ESCALATED', "
            "'ESCALATION', 1, :instructions, id, now() FROM activities WHERE id = :id"
        ),
        {
            "new": escalation_id,
            "id": activity_id,
            "instructions": escalation_instructions(reason),
        },
    )
    await record_event(
        conn,
        tenant_id,
        "ESCALATION_CREATED",
        activity_id=escalation_id,
        agent_id=agent_id,
        campaign_id=campaign_id,
    )
    return escalation_id


async def expire_approvals(
    conn: AsyncConnection, tenants: list[uuid.UUID] | None = None, limit: int = 500
) -> list[uuid.UUID]:
    """Overdue PENDING approvals become EXPIRED and their activities ESCALATED (a person
    must decide), each with APPROVAL_RESOLVED, ACTIVITY_STATUS_CHANGED and
    ESCALATION_CREATED events. Returns the expired approvals' ids."""
    scope = "AND tenant_id = ANY(CAST(:tenants AS uuid[]))" if tenants else ""
    rows = (
        await conn.execute(
            text(
                "WITH due AS (SELECT id FROM approvals WHERE status = 'PENDING' "
                f"AND expires_at <= now() {scope} ORDER BY expires_at LIMIT :limit "
                "FOR UPDATE SKIP LOCKED), "
                "expired AS (UPDATE approvals p SET status = 'EXPIRED', resolved_at = now() "
                "FROM due WHERE p.id = due.id "
                "RETURNING p.id, p.tenant_id, p.activity_id, p.campaign_id), "
                "escalated AS (UPDATE activities a SET status = 'ESCALATED', completed_at = now() "
                "FROM expired e WHERE a.id = e.activity_id AND a.status = 'AWAITING_APPROVAL' "
                "RETURNING a.id, a.agent_id) "
                "SELECT e.id, e.tenant_id, e.activity_id, e.campaign_id, s.agent_id "
                "FROM expired e LEFT JOIN escalated s ON s.id = e.activity_id"
            ),
            {"tenants": tenants, "limit": limit},
        )
    ).all()
    for approval_id, tenant_id, activity_id, campaign_id, agent_id in rows:
        await record_event(
            conn,
            tenant_id,
            "APPROVAL_RESOLVED",
            approval_id=approval_id,
            activity_id=activity_id,
            campaign_id=campaign_id,
        )
        if agent_id is not None:
            await activity_status_changed(conn, tenant_id, activity_id, agent_id, campaign_id)
        await record_event(
            conn,
            tenant_id,
            "ESCALATION_CREATED",
            approval_id=approval_id,
            activity_id=activity_id,
            agent_id=agent_id,
            campaign_id=campaign_id,
        )
    return [r[0] for r in rows]


async def plan_campaign(conn: AsyncConnection, run: Run) -> list[Any]:
    """The planner's work: the campaign's deliverables (PLAN, one per role that has a
    working agent) and a QUEUED activity for each, at the planner's priority. Returns the
    activities' rows (as create_activity's, by name); the caller enqueues their
    jobs after commit. Created through domain/store/work.py, as the mutations create work."""
    statuses = dict(
        (
            await conn.execute(
                text("SELECT role, status FROM agents WHERE tenant_id = :t"),
                {"t": run.tenant_id},
            )
        ).all()
    )
    due_dates = plan_due_dates(dt.datetime.now(dt.UTC), run.campaign_ends_on)
    created = []
    for (kind, role, title), due_at in zip(PLAN, due_dates, strict=True):
        if statuses.get(role) in (None, "TERMINATED"):
            continue
        try:
            deliverable = await create_deliverable(
                conn,
                run.tenant_id,
                run.campaign_id,
                f"{run.campaign_name}: {title.lower()}",
                kind,
                due_at,
            )
            created.append(
                await create_activity(
                    conn,
                    run.tenant_id,
                    deliverable["id"],
                    role,
                    run.priority,
                    plan_instructions(title, run.campaign_name, run.campaign_goal),
                    "CAMPAIGN_SUBMITTED",
                )
            )
        except Rejected as rejected:  # the campaign closed meanwhile: plan no further
            log.info("planner stopped planning %s: %s", run.campaign_id, rejected.message)
            break
    return created


# Reads around a run

OWN_ACTIVITY_SQL = (
    "SELECT a.agent_id, a.status, a.campaign_id, g.role FROM activities a "
    "JOIN agents g ON g.id = a.agent_id WHERE a.id = :id AND a.tenant_id = :t"
)


async def own_activity(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    agent_id: uuid.UUID,
    activity_id: uuid.UUID,
    *,
    lock: bool,
) -> Any:
    """An activity of the agent's own (its row locked with `lock`), as a row of `agent_id`,
    `status`, `campaign_id` and the agent's `role`, by attribute; Rejected NOT_FOUND for
    another tenant's or an unknown one, FORBIDDEN for another agent's."""
    sql = OWN_ACTIVITY_SQL + (" FOR UPDATE OF a" if lock else "")
    row = (await conn.execute(text(sql), {"id": activity_id, "t": tenant_id})).first()
    if row is None:
        raise Rejected("NOT_FOUND", "No activity has this ID.", "input", "activityId")
    if row.agent_id != agent_id:
        raise Rejected(
            "FORBIDDEN", "This activity belongs to another agent.", "input", "activityId"
        )
    return row


async def activity_row(conn: AsyncConnection, activity_id: uuid.UUID) -> Any:
    """The activity's row of ACTIVITY_COLUMNS, by name."""
    row = (
        await conn.execute(
            text(f"SELECT {ACTIVITY_COLUMNS} FROM activities t WHERE t.id = :id"),
            {"id": activity_id},
        )
    ).one()
    return row._mapping


async def activity_agent(
    db: Reader, tenant_id: uuid.UUID, activity_id: uuid.UUID
) -> uuid.UUID | None:
    """The agent of one of the tenant's activities; None for an unknown one."""
    rows = await db.fetch(
        "SELECT agent_id FROM activities WHERE id = :id AND tenant_id = :t",
        {"id": activity_id, "t": tenant_id},
    )
    return rows[0][0] if rows else None


async def job_of(
    conn: AsyncConnection, activity_id: uuid.UUID
) -> tuple[uuid.UUID, int, dt.datetime]:
    """(agent id, priority, created at): what the activity's job is queued under, and its
    place in the queue."""
    row = (
        await conn.execute(
            text("SELECT agent_id, priority, created_at FROM activities WHERE id = :id"),
            {"id": activity_id},
        )
    ).one()
    return row.agent_id, row.priority, row.created_at


async def stranded(
    db: Reader, tenants: Sequence[uuid.UUID] | None, min_age_s: float
) -> Sequence[Any]:
    """Rows of `id`, `tenant_id`, `agent_id`, `priority` and `created_at` (by name) of the
    QUEUED activities (of `tenants`, or of every tenant) at least `min_age_s` old, oldest
    first: those whose job may be missing."""
    scope = "AND a.tenant_id = ANY(CAST(:t AS uuid[]))" if tenants else ""
    return await db.fetch(
        "SELECT a.id, a.tenant_id, a.agent_id, a.priority, a.created_at FROM activities a "
        f"WHERE a.status = 'QUEUED' AND a.created_at < now() - make_interval(secs => :age) {scope} "
        "ORDER BY a.created_at, a.id",
        {"t": list(tenants or ()), "age": min_age_s},
    )
