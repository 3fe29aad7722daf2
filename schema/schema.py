"""The executable schema: the Query root and the Strawberry schema object."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from resolvers import query
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


schema = strawberry.Schema(
    query=Query,
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
