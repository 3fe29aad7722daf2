"""The people's mutations: campaigns, deliverables, dispatching work, approvals, agents,
preferences and skills.

Each resolver checks the role, turns input IDs into UUIDs, runs the domain rule in one
transaction (a `Rejected` rule rolls it back and becomes a user error), enqueues any job
after the commit, records the audit entry and returns the payload built from the written row.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry
from redis.exceptions import RedisError

from domain.errors import Rejected
from domain.store import agents, approvals, budgets, campaigns, preferences, skills, work
from loaders import shapes
from resolvers.common import (
    ADMINS,
    MARKETERS,
    USERS,
    Problems,
    audit,
    committed,
    input_id,
    require_role,
)
from schema import mutations as m
from schema import types as t
from schema.scalars import JSON
from schema.types import Info
from switchboard.infra.membership_cache import forget_membership

log = logging.getLogger(__name__)
REDIS_WARN_EVERY_S = 30.0
_redis_warned_at = float("-inf")

T = TypeVar("T")


async def _write(info: Info, problems: Problems, write: Callable[[Any], Awaitable[T]]) -> T | None:
    """Run `write(conn)` in one transaction; a Rejected rule becomes a user error."""
    if problems:
        return None
    try:
        async with info.context.db.transaction() as conn:
            written = await write(conn)
    except Rejected as rejected:
        problems.add(rejected.code, rejected.message, *rejected.field)
        return None
    await committed(info)
    return written


def _given(value: Any) -> bool:
    return value is not strawberry.UNSET


async def _after_commit(what: str, step: Awaitable[Any]) -> None:
    """Redis work that follows a committed change. Redis down must not turn the committed
    change into an error (the client would retry it, and do it twice): the workers' agent
    re-sync restores caps and pauses once Redis is back (tasks/queue.py)."""
    global _redis_warned_at
    try:
        await step
    except (RedisError, OSError) as error:
        if time.monotonic() - _redis_warned_at > REDIS_WARN_EVERY_S:  # one line per outage
            _redis_warned_at = time.monotonic()
            log.warning("%s after commit skipped (%s); the workers catch up", what, error)


async def _enqueue(info: Info, activity_row: Any, tenant_id: uuid.UUID) -> None:
    """The committed activity's job. Redis refusing it does not fail the mutation (see
    `_after_commit`): when Redis is unreachable (down, failing over), this process enqueues
    it again as soon as Redis answers, in its place in the queue (tasks/queue.py,
    `LateEnqueues`); any other error is logged, and the workers' reconciler is the
    backstop for both."""
    from tasks.outage import REDIS, unreachable
    from tasks.queue import enqueue_activity

    services = info.context.services
    job = {
        "activity_id": activity_row["id"],
        "tenant_id": tenant_id,
        "agent_id": activity_row["agent_id"],
        "priority": activity_row["priority"],
    }

    async def enqueue() -> None:
        try:
            await enqueue_activity(services.redis, **job)
        except (RedisError, OSError) as error:
            if unreachable(error) != REDIS:
                raise
            services.late_enqueues.add(error, created=activity_row["created_at"], **job)

    await _after_commit("enqueue", enqueue())


# Campaigns.


async def create_campaign(info: Info, input: m.CreateCampaignInput) -> m.CampaignPayload:
    require_role(info, MARKETERS)
    problems = Problems()
    if input.budget_cap_usd is not None and info.context.principal.role not in ADMINS:
        problems.add("FORBIDDEN", "Only admins and owners set budgets.", "input", "budgetCapUsd")
    tenant_id = info.context.principal.tenant_id
    fields = {
        "name": input.name,
        "goal": input.goal,
        "budget_cap_usd": input.budget_cap_usd,
        "starts_on": input.starts_on,
        "ends_on": input.ends_on,
    }
    row = await _write(
        info, problems, lambda conn: campaigns.create_campaign(conn, tenant_id, fields)
    )
    if row is None:
        return m.CampaignPayload(campaign=None, user_errors=problems.errors)
    audit(info, "createCampaign", "Campaign", row["id"])
    return m.CampaignPayload(campaign=shapes.campaign_from_row(row), user_errors=[])


async def update_campaign(
    info: Info, id: strawberry.ID, input: m.UpdateCampaignInput
) -> m.CampaignPayload:
    require_role(info, MARKETERS)
    problems = Problems()
    campaign_id = input_id(problems, "Campaign", id, "id")
    changes = {
        column: getattr(input, column)
        for column in ("name", "goal", "budget_cap_usd", "starts_on", "ends_on", "status")
        if _given(getattr(input, column))
    }
    if "status" in changes:
        if changes["status"] is None:
            problems.add("INVALID", "`status` may not be null.", "input", "status")
        else:
            changes["status"] = str(changes["status"])
    if "budget_cap_usd" in changes and info.context.principal.role not in ADMINS:
        problems.add("FORBIDDEN", "Only admins and owners change budgets.", "input", "budgetCapUsd")
    tenant_id = info.context.principal.tenant_id
    row = await _write(
        info,
        problems,
        lambda conn: campaigns.update_campaign(conn, tenant_id, campaign_id, changes),  # type: ignore[arg-type]
    )
    if row is None:
        return m.CampaignPayload(campaign=None, user_errors=problems.errors)
    audit(info, "updateCampaign", "Campaign", row["id"], {"changed": sorted(changes)})
    return m.CampaignPayload(campaign=shapes.campaign_from_row(row), user_errors=[])


async def submit_campaign(info: Info, id: strawberry.ID) -> m.CampaignPayload:
    require_role(info, MARKETERS)
    problems = Problems()
    campaign_id = input_id(problems, "Campaign", id, "id")
    tenant_id = info.context.principal.tenant_id

    async def submit(conn: Any) -> tuple[Any, Any]:
        campaign = await campaigns.submit_campaign(conn, tenant_id, campaign_id)  # type: ignore[arg-type]
        # The planner works on a deliverable of its own: the campaign's plan.
        plan = await work.create_deliverable(
            conn, tenant_id, campaign["id"], f"{campaign['name']}: campaign plan", "REPORT", None
        )
        planner = await work.create_activity(
            conn,
            tenant_id,
            plan["id"],
            "ACTIVITY_PLANNER",
            3,
            f"Plan the campaign's deliverables. Goal: {campaign['goal'] or '(none given)'}",
            "CAMPAIGN_SUBMITTED",
        )
        return campaign, planner

    written = await _write(info, problems, submit)
    if written is None:
        return m.CampaignPayload(campaign=None, user_errors=problems.errors)
    campaign, planner = written
    await _enqueue(info, planner, tenant_id)
    audit(info, "submitCampaign", "Campaign", campaign["id"])
    return m.CampaignPayload(campaign=shapes.campaign_from_row(campaign), user_errors=[])


# Work.


async def create_deliverable(info: Info, input: m.CreateDeliverableInput) -> m.DeliverablePayload:
    require_role(info, MARKETERS)
    problems = Problems()
    campaign_id = input_id(problems, "Campaign", input.campaign_id, "input", "campaignId")
    tenant_id = info.context.principal.tenant_id
    row = await _write(
        info,
        problems,
        lambda conn: work.create_deliverable(
            conn,
            tenant_id,
            campaign_id,
            input.title,
            str(input.kind),
            input.due_at,  # type: ignore[arg-type]
        ),
    )
    if row is None:
        return m.DeliverablePayload(deliverable=None, user_errors=problems.errors)
    audit(info, "createDeliverable", "Deliverable", row["id"])
    return m.DeliverablePayload(deliverable=shapes.deliverable_from_row(row), user_errors=[])


async def dispatch_activity(info: Info, input: m.DispatchActivityInput) -> m.ActivityPayload:
    require_role(info, MARKETERS)
    problems = Problems()
    deliverable_id = input_id(
        problems, "Deliverable", input.deliverable_id, "input", "deliverableId"
    )
    tenant_id = info.context.principal.tenant_id
    priority = 5 if input.priority is None else input.priority

    async def dispatch(conn: Any) -> Any:
        activity = await work.create_activity(
            conn,
            tenant_id,
            deliverable_id,
            str(input.role),
            priority,
            input.instructions,  # type: ignore[arg-type]
            "MANUAL",
        )
        check = await budgets.check_budgets(
            conn, tenant_id, activity["campaign_id"], activity["agent_id"]
        )
        if not check.ok:
            raise Rejected(
                "BUDGET_EXCEEDED",
                f"The {check.exceeded} budget is spent.",
                "input",
                "deliverableId",
            )
        return activity

    row = await _write(info, problems, dispatch)
    if row is None:
        return m.ActivityPayload(activity=None, user_errors=problems.errors)
    await _enqueue(info, row, tenant_id)
    audit(info, "dispatchActivity", "Activity", row["id"], {"priority": priority})
    return m.ActivityPayload(activity=shapes.activity_from_row(row), user_errors=[])


async def resolve_approval(info: Info, input: m.ResolveApprovalInput) -> m.ApprovalPayload:
    require_role(info, MARKETERS)
    problems = Problems()
    approval_id = input_id(problems, "Approval", input.approval_id, "input", "approvalId")
    principal = info.context.principal
    resolution = await _write(
        info,
        problems,
        lambda conn: approvals.resolve_approval(
            conn,
            principal.tenant_id,
            approval_id,
            str(input.decision),
            input.comment,  # type: ignore[arg-type]
            principal.subject_id,
        ),
    )
    if resolution is None:
        return m.ApprovalPayload(approval=None, user_errors=problems.errors)
    if resolution.revision is not None:
        await _enqueue(info, resolution.revision, principal.tenant_id)
    audit(
        info,
        "resolveApproval",
        "Approval",
        resolution.approval["id"],
        {"decision": str(input.decision)},
    )
    return m.ApprovalPayload(approval=shapes.approval_from_row(resolution.approval), user_errors=[])


# Agents and preferences.


async def set_agent_status(info: Info, id: strawberry.ID, status: t.AgentStatus) -> m.AgentPayload:
    require_role(info, ADMINS)
    problems = Problems()
    agent_id = input_id(problems, "Agent", id, "id")
    tenant_id = info.context.principal.tenant_id
    row = await _write(
        info,
        problems,
        lambda conn: agents.set_agent_status(conn, tenant_id, agent_id, str(status)),  # type: ignore[arg-type]
    )
    if row is None:
        return m.AgentPayload(agent=None, user_errors=problems.errors)
    from tasks.queue import agent_status_changed

    redis = info.context.services.redis
    # A terminated agent's token stops working (without Redis, every request checks the
    # database anyway).
    await _after_commit("forget membership", forget_membership(redis, row["id"], tenant_id))
    await _after_commit(
        "agent queue update",
        agent_status_changed(
            redis,
            info.context.db,
            tenant_id=tenant_id,
            agent_id=row["id"],
            status=row["status"],
            concurrency=row["concurrency"],
        ),
    )
    audit(info, "setAgentStatus", "Agent", row["id"], {"status": str(status)})
    return m.AgentPayload(agent=shapes.agent_from_row(row), user_errors=[])


async def set_preference(info: Info, key: str, value: JSON) -> m.PreferencePayload:
    require_role(info, USERS)
    problems = Problems()
    user_id = info.context.principal.subject_id
    row = await _write(
        info, problems, lambda conn: preferences.set_preference(conn, user_id, key, value)
    )
    if row is None:
        return m.PreferencePayload(preference=None, user_errors=problems.errors)
    audit(info, "setPreference", "Preference", None, {"key": key})
    return m.PreferencePayload(
        preference=t.Preference(key=row.key, value=row.value, updated_at=row.updated_at),
        user_errors=[],
    )


# Skills.


async def create_skill(info: Info, input: m.CreateSkillInput) -> m.SkillPayload:
    """A skill of the caller's tenant (global skills come only from the seed: no mutation
    writes a skill every tenant sees)."""
    require_role(info, ADMINS)
    problems = Problems()
    tenant_id = info.context.principal.tenant_id
    fields = {
        "name": input.name,
        "summary": input.summary,
        "content": input.content,
        "role": input.role,
    }
    row = await _write(info, problems, lambda conn: skills.create_skill(conn, tenant_id, fields))
    if row is None:
        return m.SkillPayload(skill=None, user_errors=problems.errors)
    await info.context.services.skills.changed([row.id])  # after the commit: every process
    audit(info, "createSkill", "Skill", row.id)
    return m.SkillPayload(skill=shapes.skill_from_record(row), user_errors=[])


async def update_skill(info: Info, id: strawberry.ID, input: m.UpdateSkillInput) -> m.SkillPayload:
    require_role(info, ADMINS)
    problems = Problems()
    skill_id = input_id(problems, "Skill", id, "id")
    changes = {
        column: getattr(input, column)
        for column in ("name", "summary", "content", "role")
        if _given(getattr(input, column))
    }
    tenant_id = info.context.principal.tenant_id
    row = await _write(
        info,
        problems,
        lambda conn: skills.update_skill(conn, tenant_id, skill_id, changes),  # type: ignore[arg-type]
    )
    if row is None:
        return m.SkillPayload(skill=None, user_errors=problems.errors)
    await info.context.services.skills.changed([row.id])
    audit(info, "updateSkill", "Skill", row.id, {"changed": sorted(changes)})
    return m.SkillPayload(skill=shapes.skill_from_record(row), user_errors=[])
