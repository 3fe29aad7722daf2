"""Tenancy: a token sees its own tenant only, through every entry point of the API.

acme's tokens ask for globex's objects by ID, walk acme's relations, reuse globex's
cursors and read the tenant-wide fields; every ID that comes back is checked against the
database. Agent tokens read only themselves and their own activities.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from domain.ids import parse_global_id, to_global_id
from switchboard.devdata.seed import stable_id
from switchboard.edge.auth import issue_token
from switchboard.infra.membership_cache import forget_membership
from tests.conftest import agent_gid, tenant_gid, user_gid

TABLE_BY_KIND = {
    "Tenant": "tenants",
    "Campaign": "campaigns",
    "Deliverable": "deliverables",
    "Activity": "activities",
    "Approval": "approvals",
    "Agent": "agents",
    "LlmCall": "llm_calls",
    "Skill": "skills",
}

NODE_QUERY = """query Node($id: ID!) {
  node(id: $id) {
    __typename
    id
    ... on Tenant { name slug }
    ... on Campaign { name campaignStatus: status }
    ... on Deliverable { title }
    ... on Activity { activityStatus: status }
    ... on Approval { approvalStatus: status }
    ... on Agent { role }
    ... on LlmCall { model }
    ... on Skill { name }
  }
}"""


def _tenant_id(slug: str) -> uuid.UUID:
    return stable_id(slug, "tenant")


async def _one_id_of_each_kind(db_conn: asyncpg.Connection, slug: str) -> dict[str, str]:
    """A global ID of one object of every kind that belongs to tenant `slug`."""
    tenant_id = _tenant_id(slug)
    ids = {"Tenant": to_global_id("Tenant", tenant_id)}
    for kind, table in TABLE_BY_KIND.items():
        if kind == "Tenant":
            continue
        row_id = await db_conn.fetchval(
            f"SELECT id FROM {table} WHERE tenant_id = $1 ORDER BY id LIMIT 1", tenant_id
        )
        assert row_id is not None, f"no {kind} in {slug}"
        ids[kind] = to_global_id(kind, row_id)
    return ids


async def _owners(db_conn: asyncpg.Connection, global_ids: set[str]) -> dict[str, Any]:
    """The tenant of each ID, as the database has it (None for a global skill)."""
    by_kind: dict[str, list[uuid.UUID]] = {}
    for global_id in global_ids:
        kind, row_id = parse_global_id(global_id)
        by_kind.setdefault(kind, []).append(row_id)
    owners: dict[str, Any] = {}
    for kind, row_ids in by_kind.items():
        column = "id" if kind == "Tenant" else "tenant_id"
        rows = await db_conn.fetch(
            f"SELECT id, {column} FROM {TABLE_BY_KIND[kind]} WHERE id = ANY($1)", row_ids
        )
        for row in rows:
            owners[to_global_id(kind, row[0])] = row[1]
    missing = global_ids - set(owners)
    assert not missing, f"IDs not in the database: {sorted(missing)[:5]}"
    return owners


async def _assert_all_of(db_conn: asyncpg.Connection, slug: str, global_ids: set[str]) -> None:
    owners = await _owners(db_conn, global_ids)
    foreign = {gid: owner for gid, owner in owners.items() if owner != _tenant_id(slug)}
    assert not foreign, f"{len(foreign)} IDs of other tenants: {list(foreign.items())[:5]}"


def _data(response: Any) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def _ids(value: Any) -> set[str]:
    """Every `id` anywhere in a response's data."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "id" and isinstance(item, str):
                found.add(item)
            else:
                found |= _ids(item)
    elif isinstance(value, list):
        for item in value:
            found |= _ids(item)
    return found


# Node(id:)


async def test_node_finds_every_kind_of_own_object(
    gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    for kind, global_id in (await _one_id_of_each_kind(db_conn, "globex")).items():
        node = _data(await gql(NODE_QUERY, {"id": global_id}, token("globex")))["node"]
        assert node is not None and (node["__typename"], node["id"]) == (kind, global_id)


@pytest.mark.parametrize("kind", list(TABLE_BY_KIND))
async def test_node_of_another_tenant_is_exactly_an_unknown_id(
    gql: Any, token: Any, db_conn: asyncpg.Connection, kind: str
) -> None:
    foreign = (await _one_id_of_each_kind(db_conn, "globex"))[kind]
    unknown = to_global_id(kind, uuid.uuid4())
    as_foreign = await gql(NODE_QUERY, {"id": foreign}, token("acme"))
    as_unknown = await gql(NODE_QUERY, {"id": unknown}, token("acme"))
    assert as_foreign.status_code == as_unknown.status_code == 200
    assert as_foreign.json() == as_unknown.json() == {"data": {"node": None}}
    # The same with the ID in the document and with an alias: still nothing.
    inline = await gql(
        f'{{ n: node(id: "{foreign}") {{ id }} again: node(id: "{foreign}") {{ __typename }} }}',
        token=token("acme", "owner"),
    )
    assert inline.json() == {"data": {"n": None, "again": None}}


async def test_users_are_not_nodes_of_any_tenant(gql: Any, token: Any) -> None:
    for slug in ("acme", "globex"):
        response = await gql(NODE_QUERY, {"id": user_gid(slug, "owner")}, token("acme"))
        assert response.json() == {"data": {"node": None}}


async def test_global_skills_are_shared_but_house_styles_are_not(
    gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    shared = to_global_id("Skill", stable_id("skill", "Brand voice guide"))
    own = to_global_id("Skill", stable_id("acme", "skill", "house-style"))
    foreign = to_global_id("Skill", stable_id("globex", "skill", "house-style"))
    found = {
        gid: _data(await gql(NODE_QUERY, {"id": gid}, token("acme")))["node"]
        for gid in (shared, own, foreign)
    }
    assert found[shared]["name"] == "Brand voice guide"
    assert found[own]["name"] == "Acme house style"
    assert found[foreign] is None


# Nested relations

WALK_TENANT = """{
  tenant {
    id
    agents {
      id
      activities(first: 100) {
        edges { node { id deliverable { id } approval { id } } }
        pageInfo { hasNextPage }
      }
    }
    campaigns(first: 100) {
      edges {
        node {
          id
          tenant { id }
          pendingApprovals(first: 100) { edges { node { id activity { id } } } }
        }
      }
      pageInfo { hasNextPage }
    }
  }
}"""

WALK_CAMPAIGN = """query Walk($id: ID!) {
  node(id: $id) {
    ... on Campaign {
      deliverables(first: 100) {
        edges {
          node {
            id
            campaign { id }
            latestActivity { id }
            activities(first: 100) {
              edges { node { id agent { id } approval { id resolvedBy { id } } } }
            }
          }
        }
        pageInfo { hasNextPage }
      }
    }
  }
}"""

WALK_ACTIVITY = """query Walk($id: ID!) {
  node(id: $id) {
    ... on Activity {
      llmCalls(first: 100) { edges { node { id activity { id } } } pageInfo { hasNextPage } }
    }
  }
}"""


async def test_nested_relations_stay_in_the_tenant(
    gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    tok = token("acme")
    tenant = _data(await gql(WALK_TENANT, token=tok))["tenant"]
    assert tenant["id"] == tenant_gid("acme")
    assert not tenant["campaigns"]["pageInfo"]["hasNextPage"]
    seen = _ids(tenant)
    campaigns = [edge["node"]["id"] for edge in tenant["campaigns"]["edges"]]
    activities: set[str] = set()
    for campaign in campaigns:
        found = _data(await gql(WALK_CAMPAIGN, {"id": campaign}, tok))["node"]
        seen |= _ids(found)
        for edge in found["deliverables"]["edges"]:
            activities |= {a["node"]["id"] for a in edge["node"]["activities"]["edges"]}
    for activity in sorted(activities):
        seen |= _ids(_data(await gql(WALK_ACTIVITY, {"id": activity}, tok))["node"])
    users = {gid for gid in seen if parse_global_id(gid)[0] == "User"}
    assert users, "no approval with resolvedBy was reached"
    members = await db_conn.fetch(
        "SELECT user_id FROM memberships WHERE tenant_id = $1", _tenant_id("acme")
    )
    assert users <= {to_global_id("User", row["user_id"]) for row in members}
    seen -= users

    await _assert_all_of(db_conn, "acme", seen)
    # The walk reached every campaign, deliverable, activity and call acme has.
    kinds = {parse_global_id(gid)[0] for gid in seen}
    assert {"Tenant", "Campaign", "Deliverable", "Activity", "Approval", "Agent"} <= kinds
    acme = _tenant_id("acme")
    for kind in ("Campaign", "Deliverable", "Activity", "Approval", "Agent", "LlmCall"):
        table = TABLE_BY_KIND[kind]
        count = await db_conn.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", acme)
        assert sum(parse_global_id(gid)[0] == kind for gid in seen) == count, kind


async def test_resolved_by_is_a_member_of_the_tenant(
    gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    approval_id = await db_conn.fetchval(
        "SELECT id FROM approvals WHERE tenant_id = $1 AND resolved_by IS NOT NULL "
        "ORDER BY id LIMIT 1",
        _tenant_id("acme"),
    )
    query = """query($id: ID!) { node(id: $id) { ... on Approval {
        resolvedBy { id role tenant { id } memberships { tenant { id } role } } } } }"""
    resolved_by = _data(
        await gql(query, {"id": to_global_id("Approval", approval_id)}, token("acme", "viewer"))
    )["node"]["resolvedBy"]
    member = await db_conn.fetchrow(
        "SELECT m.user_id, m.role FROM memberships m JOIN approvals a "
        "ON a.resolved_by = m.user_id AND a.tenant_id = m.tenant_id WHERE a.id = $1",
        approval_id,
    )
    assert resolved_by["id"] == to_global_id("User", member["user_id"])
    assert resolved_by["role"] == member["role"]
    assert _ids(resolved_by) == {resolved_by["id"], tenant_gid("acme")}


# Cursors

CAMPAIGN_PAGE = """query($after: String) {
  tenant { campaigns(first: 3, after: $after) {
    edges { cursor node { id } } pageInfo { endCursor } } }
}"""
QUEUE_PAGE = """query($after: String) {
  approvalQueue(first: 3, after: $after) { edges { cursor node { id } } pageInfo { endCursor } }
}"""
DELIVERABLE_PAGE = """query($id: ID!, $after: String) { node(id: $id) { ... on Campaign {
  deliverables(first: 2, after: $after) {
    edges { cursor node { id } } pageInfo { endCursor } } } } }"""
AGENT_ACTIVITY_PAGE = """query($id: ID!, $after: String) { node(id: $id) { ... on Agent {
  activities(first: 2, after: $after) {
    edges { cursor node { id } } pageInfo { endCursor } } } } }"""


def _connection(data: Any) -> Any:
    if "tenant" in data:
        return data["tenant"]["campaigns"]
    if "approvalQueue" in data:
        return data["approvalQueue"]
    node = data["node"]
    return node.get("deliverables") or node.get("activities")


async def _campaign_with_deliverables(db_conn: asyncpg.Connection, slug: str) -> str:
    row_id = await db_conn.fetchval(
        "SELECT campaign_id FROM deliverables WHERE tenant_id = $1 "
        "GROUP BY campaign_id HAVING count(*) > 2 ORDER BY campaign_id LIMIT 1",
        _tenant_id(slug),
    )
    return to_global_id("Campaign", row_id)


async def test_cursors_of_another_tenant_only_ever_page_through_own_rows(
    gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    acme_campaign = await _campaign_with_deliverables(db_conn, "acme")
    globex_campaign = await _campaign_with_deliverables(db_conn, "globex")
    cases = [
        (CAMPAIGN_PAGE, {}, {}),
        (QUEUE_PAGE, {}, {}),
        (DELIVERABLE_PAGE, {"id": globex_campaign}, {"id": acme_campaign}),
        (
            AGENT_ACTIVITY_PAGE,
            {"id": agent_gid("globex", "COPYWRITER")},
            {"id": agent_gid("acme", "COPYWRITER")},
        ),
    ]
    for query, globex_vars, acme_vars in cases:
        globex_page = _connection(_data(await gql(query, globex_vars, token("globex"))))
        cursors = [edge["cursor"] for edge in globex_page["edges"]]
        assert cursors, query
        for cursor in cursors:
            page = _connection(
                _data(await gql(query, acme_vars | {"after": cursor}, token("acme")))
            )
            ids = {edge["node"]["id"] for edge in page["edges"]}
            await _assert_all_of(db_conn, "acme", ids)


async def test_another_tenants_object_as_owner_of_a_page_is_not_found(
    gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    globex_campaign = await _campaign_with_deliverables(db_conn, "globex")
    for query, variables in (
        (DELIVERABLE_PAGE, {"id": globex_campaign}),
        (AGENT_ACTIVITY_PAGE, {"id": agent_gid("globex", "COPYWRITER")}),
    ):
        assert _data(await gql(query, variables, token("acme"))) == {"node": None}


# Tenant-wide fields


async def test_tenant_wide_fields_show_only_the_tokens_tenant(
    gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    query = """{
      tenant { id slug name monthlySpendCapUsd pendingApprovalCount agents { id } }
      approvalQueue(first: 100) { edges { node { id activity { id agent { id } } } } }
      mobileHome {
        monthlySpendCapUsd
        urgentApprovals { id activity { id } }
        recentActivities { id agent { id } deliverable { id campaign { id } } }
      }
    }"""
    for slug, name, cap in (
        ("acme", "Acme Outdoor Co.", "400.00"),
        ("globex", "Globex Corporation", "250.00"),
    ):
        data = _data(await gql(query, token=token(slug, "viewer")))
        assert data["tenant"]["id"] == tenant_gid(slug)
        assert (data["tenant"]["slug"], data["tenant"]["name"]) == (slug, name)
        assert data["tenant"]["monthlySpendCapUsd"] == data["mobileHome"]["monthlySpendCapUsd"]
        assert Decimal(data["mobileHome"]["monthlySpendCapUsd"]) == Decimal(cap)
        assert {a["id"] for a in data["tenant"]["agents"]} == {
            agent_gid(slug, role)
            for role in (
                "ACTIVITY_PLANNER",
                "COPYWRITER",
                "SEO_SPECIALIST",
                "SOCIAL_MEDIA_MANAGER",
                "PAID_ADS_MANAGER",
                "DATA_ANALYST",
                "CONTENT_RESEARCHER",
            )
        }
        await _assert_all_of(db_conn, slug, _ids(data))
        queue = {edge["node"]["id"] for edge in data["approvalQueue"]["edges"]}
        pending = await db_conn.fetch(
            "SELECT id FROM approvals WHERE tenant_id = $1 AND status = 'PENDING'",
            _tenant_id(slug),
        )
        assert queue == {to_global_id("Approval", row["id"]) for row in pending}
        assert data["tenant"]["pendingApprovalCount"] == len(pending)
        assert data["mobileHome"]["urgentApprovals"] and data["mobileHome"]["recentActivities"]


async def test_viewer_memberships_list_only_the_tokens_tenant(
    app: Any, gql: Any, token: Any, settings: Any, db_conn: asyncpg.Connection
) -> None:
    """Even a user who is a member of two tenants sees only the token's one."""
    query = "{ viewer { id role tenant { id } memberships { role tenant { id slug } } } }"
    user, globex = stable_id("user", "marketer@acme.example"), _tenant_id("globex")
    acme_only = _data(await gql(query, token=token("acme")))["viewer"]
    assert acme_only["memberships"] == [
        {"role": "MARKETER", "tenant": {"id": tenant_gid("acme"), "slug": "acme"}}
    ]
    await db_conn.execute(
        "INSERT INTO memberships (tenant_id, user_id, role, created_at) "
        "VALUES ($1, $2, 'VIEWER', now())",
        globex,
        user,
    )
    try:
        await forget_membership(app.state.redis, user, globex)
        as_acme = _data(await gql(query, token=token("acme")))["viewer"]
        assert as_acme == acme_only
        in_globex = issue_token(
            settings, user_gid("acme", "marketer"), tenant_gid("globex"), "dashboard"
        )
        as_globex = _data(await gql(query, token=in_globex))["viewer"]
        assert as_globex == {
            "id": user_gid("acme", "marketer"),
            "role": "VIEWER",
            "tenant": {"id": tenant_gid("globex")},
            "memberships": [
                {"role": "VIEWER", "tenant": {"id": tenant_gid("globex"), "slug": "globex"}}
            ],
        }
    finally:
        await db_conn.execute(
            "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2", globex, user
        )
        await forget_membership(app.state.redis, user, globex)


# Agent tokens


async def _activity_of(db_conn: asyncpg.Connection, slug: str, role: str) -> str:
    row_id = await db_conn.fetchval(
        "SELECT id FROM activities WHERE agent_id = $1 ORDER BY id LIMIT 1",
        stable_id(slug, "agent", role),
    )
    assert row_id is not None
    return to_global_id("Activity", row_id)


async def test_agent_token_reads_its_viewer(gql: Any, agent_token: Any) -> None:
    viewer = _data(
        await gql("{ viewer { id tenant { id } } }", token=agent_token("acme", "SEO_SPECIALIST"))
    )
    assert viewer == {
        "viewer": {"id": agent_gid("acme", "SEO_SPECIALIST"), "tenant": {"id": tenant_gid("acme")}}
    }


@pytest.mark.parametrize(
    "query",
    [
        "{ tenant { id } }",
        "{ approvalQueue { edges { node { id } } } }",
        "{ mobileHome { pendingApprovalCount } }",
    ],
)
async def test_agent_token_may_not_read_tenant_wide_fields(
    gql: Any, agent_token: Any, query: str
) -> None:
    response = await gql(query, token=agent_token("acme", "COPYWRITER"))
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == ["FORBIDDEN"]


async def test_agent_token_sees_itself_and_its_own_activities_only(
    gql: Any, agent_token: Any, db_conn: asyncpg.Connection
) -> None:
    tok = agent_token("acme", "COPYWRITER")
    own_activity = await _activity_of(db_conn, "acme", "COPYWRITER")
    visible = {
        agent_gid("acme", "COPYWRITER"): "Agent",
        own_activity: "Activity",
    }
    for global_id, kind in visible.items():
        node = _data(await gql(NODE_QUERY, {"id": global_id}, tok))["node"]
        assert node is not None and (node["__typename"], node["id"]) == (kind, global_id)
    hidden = [
        agent_gid("acme", "SEO_SPECIALIST"),
        await _activity_of(db_conn, "acme", "SEO_SPECIALIST"),
        await _activity_of(db_conn, "globex", "COPYWRITER"),
        agent_gid("globex", "COPYWRITER"),
        tenant_gid("acme"),
        *(await _one_id_of_each_kind(db_conn, "acme")).values(),
    ]
    for global_id in hidden:
        if global_id in visible:
            continue
        response = await gql(NODE_QUERY, {"id": global_id}, tok)
        assert response.json() == {"data": {"node": None}}, global_id


AGENT_DETOURS = {
    "activity's campaign": """query($id: ID!) { node(id: $id) { ... on Activity {
        deliverable { campaign {
          deliverables(first: 100) { edges { node { activities(first: 100) {
            edges { node { id agent { id } } } } } } }
          pendingApprovals(first: 100) { edges { node { activity { agent { id } } } } }
        } } } } }""",
    "activity's tenant": """query($id: ID!) { node(id: $id) { ... on Activity {
        deliverable { campaign { tenant {
          agents { id }
          campaigns(first: 100) { edges { node { id } } }
        } } } } } }""",
    "viewer's tenant": """{ viewer { tenant {
        agents { id }
        campaigns(first: 100) { edges { node { id } } }
      } } }""",
}


@pytest.mark.parametrize("detour", list(AGENT_DETOURS))
async def test_agent_token_cannot_reach_other_agents_work_through_relations(
    gql: Any, agent_token: Any, db_conn: asyncpg.Connection, detour: str
) -> None:
    """What an activity needs is its deliverable and campaign, not the tenant's other work
    (resolvers/query.py: "Agent tokens read ... never tenant-wide lists")."""
    tok = agent_token("acme", "COPYWRITER")
    own_activity = await _activity_of(db_conn, "acme", "COPYWRITER")
    own_campaign = await db_conn.fetchval(
        "SELECT campaign_id FROM activities WHERE id = $1", parse_global_id(own_activity)[1]
    )
    response = await gql(AGENT_DETOURS[detour], {"id": own_activity}, tok)
    assert response.status_code == 200
    seen = _ids(response.json().get("data"))
    others = {gid for gid in seen if gid.startswith("agt_")} - {agent_gid("acme", "COPYWRITER")}
    others |= {gid for gid in seen if gid.startswith("cmp_")} - {
        to_global_id("Campaign", own_campaign)
    }
    assert not others, f"{len(others)} other agents and campaigns: {sorted(others)[:4]}"
