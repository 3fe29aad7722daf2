"""The executable schema: the Query, Mutation and Subscription roots and the schema object."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from resolvers import agent_work, mutations, query, subscriptions
from schema import mutations as m
from schema import types as t
from schema.scalars import SCALAR_MAP


@strawberry.type
class Query:
    viewer: t.Viewer = strawberry.field(
        resolver=query.viewer,
        description="The authenticated user or agent, in the tenant of the token.",
    )
    tenant: t.Tenant = strawberry.field(
        resolver=query.tenant, graphql_type=t.Tenant, description="The tenant of the token."
    )
    node: t.Node | None = strawberry.field(
        resolver=query.node,
        description=(
            "Any object of the token's tenant by its ID; null for an unknown ID or one of "
            "another tenant."
        ),
    )
    approval_queue: t.Connection[t.Approval] = strawberry.field(
        resolver=query.approval_queue,
        graphql_type=t.Connection[t.Approval],
        description="Pending approvals of the token's tenant, soonest expiry first.",
    )
    mobile_home: t.MobileHome = strawberry.field(
        resolver=query.mobile_home, description="What the mobile app's home screen shows."
    )
    skill_search: list[t.SkillMatch] = strawberry.field(
        resolver=query.skill_search,
        description="Skills whose content best matches the query, most similar first.",
    )


@strawberry.type
class Mutation:
    create_campaign: m.CampaignPayload = strawberry.field(resolver=mutations.create_campaign)
    update_campaign: m.CampaignPayload = strawberry.field(resolver=mutations.update_campaign)
    submit_campaign: m.CampaignPayload = strawberry.field(
        resolver=mutations.submit_campaign,
        description="DRAFT to ACTIVE; enqueues one ACTIVITY_PLANNER job for the campaign.",
    )
    create_deliverable: m.DeliverablePayload = strawberry.field(
        resolver=mutations.create_deliverable
    )
    dispatch_activity: m.ActivityPayload = strawberry.field(
        resolver=mutations.dispatch_activity,
        description=(
            "Creates a QUEUED activity for the tenant's agent of that role and enqueues its "
            "job at that priority."
        ),
    )
    resolve_approval: m.ApprovalPayload = strawberry.field(resolver=mutations.resolve_approval)
    set_agent_status: m.AgentPayload = strawberry.field(
        resolver=mutations.set_agent_status,
        description="Pause (PAUSED), resume (IDLE) or terminate (TERMINATED) an agent.",
    )
    set_preference: m.PreferencePayload = strawberry.field(
        resolver=mutations.set_preference,
        description="Create or replace one preference of the viewer.",
    )
    report_activity_progress: m.ActivityPayload = strawberry.field(
        resolver=agent_work.report_activity_progress,
        description="Agent runtimes only: progress of one of their activities.",
    )
    record_llm_call: m.LlmCallPayload = strawberry.field(
        resolver=agent_work.record_llm_call,
        description="Agent runtimes only: one LLM call made for one of their activities.",
    )
    create_skill: m.SkillPayload = strawberry.field(
        resolver=mutations.create_skill,
        description="ADMIN and OWNER: a skill of the token's tenant.",
    )
    update_skill: m.SkillPayload = strawberry.field(
        resolver=mutations.update_skill,
        description="ADMIN and OWNER: change a skill of the token's tenant.",
    )


@strawberry.type
class Subscription:
    tenant_events: t.TenantEvent = strawberry.subscription(
        resolver=subscriptions.tenant_events,
        description=(
            "Events of the token's tenant, optionally only some types. With `after`, first "
            "replays what came after that position."
        ),
    )
    activity_stream: t.ActivityStreamEvent = strawberry.subscription(
        resolver=subscriptions.activity_stream,
        description=(
            "Text and status of one activity as its agent works. With `after`, first replays "
            "what came after that position."
        ),
    )


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
    types=[
        t.Tenant,
        t.Campaign,
        t.Deliverable,
        t.Activity,
        t.Approval,
        t.Agent,
        t.LlmCall,
        t.Skill,
    ],
)
