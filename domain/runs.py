"""The run of one activity: start, streamed output, LLM calls, budgets, and its end.

The job worker (tasks/runner.py) and the agent runtimes' mutations (reportActivityProgress,
recordLlmCall) go through these same functions, so an activity moves the same way whoever
runs it. Each function works in the caller's transaction and records the tenant events of
the change it makes.

Activity states an agent's run moves through:

    QUEUED ──start──▶ RUNNING ──finish──▶ AWAITING_APPROVAL   (a PENDING approval, 48 h)
                         │    └─finish──▶ COMPLETED            (the planner: no approval)
                         ├──fail──────▶ FAILED                 (failureReason, e.g. BUDGET_EXCEEDED)
                         └──escalate──▶ ESCALATED              (a person must look)
    QUEUED / RUNNING ──cancel──▶ CANCELLED                     (its agent was terminated)

A RUNNING activity may be started again: its job is delivered again after its worker died
or lost the job's lease (a Redis outage longer than the lease), and the run starts over
(output cleared; LLM calls already made stay recorded).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.budgets import BUDGET_EXCEEDED, check_budgets
from domain.events import activity_status_changed, record_event
from domain.llm_calls import NewLlmCall, RecordedCall, record_llm_call
from loaders.shapes import ACTIVITY_COLUMNS

log = logging.getLogger(__name__)

APPROVAL_TTL = dt.timedelta(hours=48)
MAX_CHUNK = 64_000
MAX_OUTPUT = 1_000_000
MAX_FAILURE_REASON = 2_000

# Risk of a finished activity's approval: the higher of what its deliverable's kind and its
# agent's role carry. Paid ads and emails reach customers or spend money: HIGH.
KIND_RISK = {
    "AD_SET": "HIGH",
    "EMAIL": "HIGH",
    "BLOG_POST": "MEDIUM",
    "SOCIAL_POST": "MEDIUM",
    "SEO_AUDIT": "LOW",
    "REPORT": "LOW",
}
ROLE_RISK = {
    "PAID_ADS_MANAGER": "HIGH",
    "COPYWRITER": "MEDIUM",
    "SOCIAL_MEDIA_MANAGER": "MEDIUM",
    "ACTIVITY_PLANNER": "LOW",
    "SEO_SPECIALIST": "LOW",
    "DATA_ANALYST": "LOW",
    "CONTENT_RESEARCHER": "LOW",
}
_RISK_ORDER = ["LOW", "MEDIUM", "HIGH"]


def risk_level(role: str, kind: str) -> str:
    return max(KIND_RISK.get(kind, "MEDIUM"), ROLE_RISK.get(role, "LOW"), key=_RISK_ORDER.index)


# What an agent may report about its own activity (reportActivityProgress).
AGENT_TRANSITIONS = {
    "QUEUED": {"RUNNING"},
    "RUNNING": {"RUNNING", "AWAITING_APPROVAL", "FAILED", "ESCALATED"},
}

# What the planner puts in every campaign: (kind, role, title).
PLAN = [
    ("BLOG_POST", "COPYWRITER", "Launch blog post"),
    ("SOCIAL_POST", "SOCIAL_MEDIA_MANAGER", "Social media posts"),
    ("EMAIL", "COPYWRITER", "Announcement email"),
    ("SEO_AUDIT", "SEO_SPECIALIST", "SEO audit of the landing pages"),
    ("AD_SET", "PAID_ADS_MANAGER", "Paid ads"),
]


@dataclass(frozen=True, slots=True)
class Run:
    """What a run needs to know of its activity, agent, deliverable and campaign."""

    activity_id: uuid.UUID
    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    campaign_id: uuid.UUID
    deliverable_id: uuid.UUID
    priority: int
    instructions: str | None
    role: str
    model: str
    max_turns: int
    agent_status: str
    deliverable_title: str
    deliverable_kind: str
    campaign_name: str
    campaign_goal: str | None
    campaign_ends_on: dt.date | None


RUN_SELECT = """
SELECT a.id, a.tenant_id, a.agent_id, a.campaign_id, a.deliverable_id, a.priority,
       a.instructions, g.role, g.model, g.max_turns_per_run, g.status, d.title, d.kind,
       m.name, m.goal, m.ends_on
FROM {source} a
JOIN agents g ON g.id = a.agent_id
JOIN deliverables d ON d.id = a.deliverable_id
JOIN campaigns m ON m.id = a.campaign_id
"""


def _run(row: Any) -> Run:
    return Run(*row)


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
    await activity_status_changed(conn, tenant_id, activity_id, row[0], row[1])
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
                "SELECT a.status, g.status FROM activities a JOIN agents g ON g.id = a.agent_id "
                "WHERE a.id = :id AND a.tenant_id = :t"
            ),
            {"id": activity_id, "t": tenant_id},
        )
    ).first()
    return (row[0], row[1]) if row else None


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
    """A QUEUED or RUNNING activity ends FAILED (or ESCALATED) with its reason; a row of
    ACTIVITY_COLUMNS, or None if it was in no such state."""
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
                "reason": reason[:MAX_FAILURE_REASON],
                "id": activity_id,
                "t": tenant_id,
            },
        )
    ).first()
    if row is None:
        return None
    await activity_status_changed(conn, tenant_id, activity_id, row[2], row[-1])
    if status == "ESCALATED":
        await record_event(
            conn,
            tenant_id,
            "ESCALATION_CREATED",
            activity_id=activity_id,
            agent_id=row[2],
            campaign_id=row[-1],
        )
    await _agent_idle_unless_busy(conn, tenant_id, row[2])
    return row


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
    await activity_status_changed(conn, tenant_id, activity_id, row[0], row[1])
    await _agent_idle_unless_busy(conn, tenant_id, row[0])
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
    agent_id, campaign_id = failed[2], failed[-1]
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
            "instructions": (
                "A person is needed: this work failed after every retry.\n\n"
                f"Reason: {reason[:MAX_FAILURE_REASON]}"
            ),
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
    activities' rows (ACTIVITY_COLUMNS, then the campaign id); the caller enqueues their
    jobs after commit. Created through domain.work, as the mutations create work."""
    from domain.errors import Rejected
    from domain.work import create_activity, create_deliverable

    statuses = dict(
        (
            await conn.execute(
                text("SELECT role, status FROM agents WHERE tenant_id = :t"),
                {"t": run.tenant_id},
            )
        ).all()
    )
    now = dt.datetime.now(dt.UTC)
    if run.campaign_ends_on is not None:
        end = dt.datetime.combine(run.campaign_ends_on, dt.time(17), tzinfo=dt.UTC)
    else:
        end = now + dt.timedelta(days=14)
    end = max(end, now + dt.timedelta(days=len(PLAN)))
    step = (end - now) / len(PLAN)
    created = []
    for index, (kind, role, title) in enumerate(PLAN):
        if statuses.get(role) in (None, "TERMINATED"):
            continue
        try:
            deliverable = await create_deliverable(
                conn,
                run.tenant_id,
                run.campaign_id,
                f"{run.campaign_name}: {title.lower()}",
                kind,
                now + step * (index + 1),
            )
            created.append(
                await create_activity(
                    conn,
                    run.tenant_id,
                    deliverable[0],
                    role,
                    run.priority,
                    f"{title} for the campaign “{run.campaign_name}”. "
                    f"Goal: {run.campaign_goal or '(none given)'}",
                    "CAMPAIGN_SUBMITTED",
                )
            )
        except Rejected as rejected:  # the campaign closed meanwhile: plan no further
            log.info("planner stopped planning %s: %s", run.campaign_id, rejected.message)
            break
    return created
