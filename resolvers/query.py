"""The Query type's resolvers. Object relations live on the types themselves (schema/types.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from typing import Any

import strawberry

from domain import skills
from domain.access import require_member
from domain.ids import parse_global_id
from domain.pagination import page_args
from domain.spend import month_window, role_label
from loaders import shapes
from schema import types as t
from schema.types import Info


async def viewer(info: Info) -> t.Viewer:
    principal = info.context.principal
    if not principal.is_agent:
        return await info.context.loaders.member.load(principal.subject_id)
    agent = await info.context.loaders.agent.load(principal.subject_id)
    return t.Viewer(
        id=principal.global_id,
        email=f"{agent.role.lower().replace('_', '-')}@agents.switchboard.invalid",
        display_name=f"{role_label(agent.role)} agent",
        role="VIEWER",
        tenant_id=principal.tenant_id,
        user_id=None,
    )


def tenant(info: Info) -> Awaitable[t.Tenant]:
    require_member(info.context.principal)
    return info.context.loaders.tenant.load(info.context.principal.tenant_id)


async def node(info: Info, id: strawberry.ID) -> Any:
    kind, row_id = parse_global_id(id)
    loaders = info.context.loaders
    principal = info.context.principal
    if principal.is_agent:
        return await _agent_visible_node(info, kind, row_id)
    if kind == "Tenant":
        return await loaders.tenant.load(row_id)
    if kind == "Skill":
        return await loaders.skill.load(row_id)
    if kind == "User":
        return None  # a Viewer is not a Node
    return await getattr(loaders, _LOADER_BY_KIND[kind]).load(row_id)


_LOADER_BY_KIND = {
    "Campaign": "campaign",
    "Deliverable": "deliverable",
    "Activity": "activity",
    "Approval": "approval",
    "Agent": "agent",
    "LlmCall": "llm_call",
}


async def _agent_visible_node(info: Info, kind: str, row_id: Any) -> Any:
    """An agent sees itself and its own activities (and, through them, what they need)."""
    principal = info.context.principal
    if kind == "Agent":
        return (
            await info.context.loaders.agent.load(row_id)
            if row_id == principal.subject_id
            else None
        )
    if kind == "Activity":
        activity = await info.context.loaders.activity.load(row_id)
        return activity if activity and activity.agent_id == principal.subject_id else None
    return None


def approval_queue(
    info: Info,
    first: int | None = 20,
    after: str | None = None,
    risk_level: t.RiskLevel | None = None,
) -> Awaitable[t.Connection[t.Approval]]:
    require_member(info.context.principal)
    page = page_args(first, after)
    key = (info.context.principal.tenant_id, page, risk_level)
    return info.context.loaders.pending_approvals_of_tenant.load(key)


async def mobile_home(info: Info) -> t.MobileHome:
    require_member(info.context.principal)
    loaders = info.context.loaders
    tenant_id = info.context.principal.tenant_id
    month = month_window(dt.datetime.now(dt.UTC))
    (pending, active, running), spend, tenant_row = await asyncio.gather(
        loaders.tenant_overview.load(tenant_id),
        loaders.spend.load(("TENANT", "", month.start, month.end)),
        loaders.tenant.load(tenant_id),
    )
    return t.MobileHome(
        pending_approval_count=pending,
        active_campaign_count=active,
        running_activity_count=running,
        spend_this_month_usd=spend.total_usd,
        monthly_spend_cap_usd=tenant_row.monthly_spend_cap_usd,
        tenant_id=tenant_id,
    )


async def skill_search(
    info: Info, query: str, role: t.AgentRole | None = None, first: int | None = 5
) -> list[t.SkillMatch]:
    """Qdrant search over the tenant's own and the global skills (switchboard/skill_search/)."""
    query, first = skills.search_terms(query, first)
    hits = await info.context.services.skills.search(
        info.context.principal.tenant_id, query, None if role is None else str(role), first
    )
    return [t.SkillMatch(skill=shapes.skill_from_record(hit), score=hit.score) for hit in hits]
