"""The people's mutations: roles, user errors that change nothing, state machines, audit."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from domain.ids import to_global_id
from switchboard.devdata.seed import seed_demo, stable_id
from switchboard.infra.db import UNNAMED_STATEMENTS
from tests.conftest import Servers, agent_gid

SLUG = "umbrella"
TENANT = stable_id(SLUG, "tenant")

CREATE = """mutation($input: CreateCampaignInput!) { createCampaign(input: $input) {
  campaign { id name goal status budgetCapUsd startsOn endsOn }
  userErrors { field message code } } }"""
UPDATE = """mutation($id: ID!, $input: UpdateCampaignInput!) {
  updateCampaign(id: $id, input: $input) {
  campaign { id name goal status budgetCapUsd } userErrors { field message code } } }"""
SUBMIT = """mutation($id: ID!) { submitCampaign(id: $id) {
  campaign { id status } userErrors { field message code } } }"""
RESOLVE = """mutation($input: ResolveApprovalInput!) { resolveApproval(input: $input) {
  approval { id status comment resolvedBy { id } activity { id status } }
  userErrors { field message code } } }"""
SET_STATUS = """mutation($id: ID!, $status: AgentStatus!) {
  setAgentStatus(id: $id, status: $status) {
  agent { id status } userErrors { field message code } } }"""
SET_PREFERENCE = """mutation($key: String!, $value: JSON!) {
  setPreference(key: $key, value: $value) {
  preference { key value updatedAt } userErrors { field message code } } }"""
CREATE_DELIVERABLE = """mutation($input: CreateDeliverableInput!) {
  createDeliverable(input: $input) {
  deliverable { id title kind status campaign { id } } userErrors { field message code } } }"""


@pytest.fixture(scope="module")
async def tenant(servers: Servers) -> None:
    engine = create_async_engine(servers.database_url, connect_args=UNNAMED_STATEMENTS)
    async with engine.begin() as conn:
        await seed_demo(conn, {SLUG: ("Umbrella Corp.", Decimal("500.00"))})
    await engine.dispose()


async def _count(db_conn: asyncpg.Connection, table: str) -> int:
    return await db_conn.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", TENANT)


def _payload(response: Any, field: str) -> dict[str, Any]:
    body = response.json()
    assert "errors" not in body, body
    return body["data"][field]


async def test_a_marketer_creates_a_draft_campaign_and_it_is_audited(
    tenant: None, gql: Any, token: Any, db_conn: asyncpg.Connection, app: Starlette
) -> None:
    response = await gql(
        CREATE,
        {"input": {"name": "Autumn launch", "goal": "Sell boots", "startsOn": "2026-12-01"}},
        token(SLUG),
    )
    payload = _payload(response, "createCampaign")
    assert payload["userErrors"] == []
    campaign = payload["campaign"]
    assert (campaign["name"], campaign["status"], campaign["startsOn"]) == (
        "Autumn launch",
        "DRAFT",
        "2026-12-01",
    )
    await app.state.services.audit.flush()
    row = await db_conn.fetchrow(
        "SELECT actor_id, actor_kind, action, target_type FROM audit_logs "
        "WHERE tenant_id = $1 AND target_id = $2",
        TENANT,
        uuid.UUID(hex=campaign["id"][4:]),
    )
    assert tuple(row) == (
        stable_id("user", f"marketer@{SLUG}.example"),
        "USER",
        "createCampaign",
        "Campaign",
    )


@pytest.mark.parametrize(
    ("variables", "code", "field"),
    [
        ({"name": ""}, "INVALID", ["input", "name"]),
        ({"name": "x" * 201}, "INVALID", ["input", "name"]),
        (
            {"name": "Ok", "startsOn": "2026-12-02", "endsOn": "2026-12-01"},
            "INVALID",
            ["input", "endsOn"],
        ),
        ({"name": "Ok", "budgetCapUsd": "100"}, "FORBIDDEN", ["input", "budgetCapUsd"]),
    ],
)
async def test_bad_campaign_input_is_a_user_error_and_changes_nothing(
    tenant: None,
    gql: Any,
    token: Any,
    db_conn: asyncpg.Connection,
    variables: dict[str, Any],
    code: str,
    field: list[str],
) -> None:
    before = await _count(db_conn, "campaigns")
    payload = _payload(await gql(CREATE, {"input": variables}, token(SLUG)), "createCampaign")
    assert payload["campaign"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, field)]
    assert await _count(db_conn, "campaigns") == before


async def test_an_admin_sets_a_budget(tenant: None, gql: Any, token: Any) -> None:
    payload = _payload(
        await gql(
            CREATE, {"input": {"name": "Budgeted", "budgetCapUsd": "250.50"}}, token(SLUG, "admin")
        ),
        "createCampaign",
    )
    assert Decimal(payload["campaign"]["budgetCapUsd"]) == Decimal("250.50")


@pytest.mark.parametrize("local", ["viewer"])
async def test_a_viewer_may_not_write_and_nothing_changes(
    tenant: None, gql: Any, token: Any, db_conn: asyncpg.Connection, local: str
) -> None:
    before = await _count(db_conn, "campaigns")
    body = (await gql(CREATE, {"input": {"name": "Nope"}}, token(SLUG, local))).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await _count(db_conn, "campaigns") == before


async def test_agent_tokens_may_not_call_peoples_mutations(
    tenant: None, gql: Any, agent_token: Any
) -> None:
    body = (await gql(CREATE, {"input": {"name": "Nope"}}, agent_token(SLUG, "COPYWRITER"))).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def _new_campaign(gql: Any, token: Any, name: str) -> str:
    payload = _payload(await gql(CREATE, {"input": {"name": name}}, token(SLUG)), "createCampaign")
    return payload["campaign"]["id"]


async def test_campaign_status_follows_its_state_machine(
    tenant: None, gql: Any, token: Any
) -> None:
    campaign = await _new_campaign(gql, token, "Machine")
    refused = _payload(
        await gql(UPDATE, {"id": campaign, "input": {"status": "ACTIVE"}}, token(SLUG)),
        "updateCampaign",
    )
    assert [e["code"] for e in refused["userErrors"]] == ["INVALID_STATE"]
    archived = _payload(
        await gql(
            UPDATE, {"id": campaign, "input": {"status": "ARCHIVED", "goal": None}}, token(SLUG)
        ),
        "updateCampaign",
    )
    assert archived["campaign"]["status"] == "ARCHIVED" and archived["campaign"]["goal"] is None
    again = _payload(
        await gql(UPDATE, {"id": campaign, "input": {"status": "PAUSED"}}, token(SLUG)),
        "updateCampaign",
    )
    assert [e["code"] for e in again["userErrors"]] == ["INVALID_STATE"]


async def test_another_tenants_campaign_is_not_found(tenant: None, gql: Any, token: Any) -> None:
    foreign = to_global_id("Campaign", stable_id("globex", "campaign", 0))
    payload = _payload(
        await gql(UPDATE, {"id": foreign, "input": {"name": "Mine now"}}, token(SLUG)),
        "updateCampaign",
    )
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("NOT_FOUND", ["id"])]
    malformed = _payload(
        await gql(UPDATE, {"id": "cmp_nope", "input": {"name": "x"}}, token(SLUG)),
        "updateCampaign",
    )
    assert [e["code"] for e in malformed["userErrors"]] == ["INVALID"]


async def test_deliverables_join_open_campaigns_only(tenant: None, gql: Any, token: Any) -> None:
    campaign = await _new_campaign(gql, token, "Home of deliverables")
    created = _payload(
        await gql(
            CREATE_DELIVERABLE,
            {"input": {"campaignId": campaign, "title": "Launch post", "kind": "BLOG_POST"}},
            token(SLUG),
        ),
        "createDeliverable",
    )
    assert created["deliverable"]["status"] == "PLANNED"
    assert created["deliverable"]["campaign"]["id"] == campaign
    await gql(UPDATE, {"id": campaign, "input": {"status": "ARCHIVED"}}, token(SLUG))
    refused = _payload(
        await gql(
            CREATE_DELIVERABLE,
            {"input": {"campaignId": campaign, "title": "Late", "kind": "EMAIL"}},
            token(SLUG),
        ),
        "createDeliverable",
    )
    assert [e["code"] for e in refused["userErrors"]] == ["INVALID_STATE"]


async def _pending_approval(db_conn: asyncpg.Connection) -> str:
    approval_id = await db_conn.fetchval(
        "SELECT id FROM approvals WHERE tenant_id = $1 AND status = 'PENDING' "
        "AND risk_level <> 'HIGH' ORDER BY expires_at DESC LIMIT 1",
        TENANT,
    )
    return to_global_id("Approval", approval_id)


async def test_concurrent_resolves_of_one_approval_succeed_exactly_once(
    tenant: None, gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    approval = await _pending_approval(db_conn)
    responses = await asyncio.gather(
        *(
            gql(RESOLVE, {"input": {"approvalId": approval, "decision": "APPROVE"}}, token(SLUG))
            for _ in range(8)
        )
    )
    payloads = [_payload(r, "resolveApproval") for r in responses]
    winners = [p for p in payloads if p["approval"]]
    assert len(winners) == 1
    assert winners[0]["approval"]["status"] == "APPROVED"
    assert winners[0]["approval"]["activity"]["status"] == "COMPLETED"
    assert winners[0]["approval"]["resolvedBy"]["id"] == to_global_id(
        "User", stable_id("user", f"marketer@{SLUG}.example")
    )
    assert sorted(e["code"] for p in payloads for e in p["userErrors"]) == ["INVALID_STATE"] * 7


async def test_a_rejection_cancels_the_work(
    tenant: None, gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    approval = await _pending_approval(db_conn)
    payload = _payload(
        await gql(
            RESOLVE,
            {"input": {"approvalId": approval, "decision": "REJECT", "comment": "Off brand"}},
            token(SLUG),
        ),
        "resolveApproval",
    )
    assert payload["approval"]["status"] == "REJECTED"
    assert payload["approval"]["activity"]["status"] == "CANCELLED"


async def test_a_revision_needs_a_comment(
    tenant: None, gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    approval = await _pending_approval(db_conn)
    payload = _payload(
        await gql(
            RESOLVE,
            {"input": {"approvalId": approval, "decision": "REQUEST_REVISION"}},
            token(SLUG),
        ),
        "resolveApproval",
    )
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
        ("INVALID", ["input", "comment"])
    ]
    status = await db_conn.fetchval(
        "SELECT status FROM approvals WHERE id = $1", uuid.UUID(hex=approval[4:])
    )
    assert status == "PENDING"


async def test_preferences_are_upserted(tenant: None, gql: Any, token: Any) -> None:
    for value in ({"density": "compact"}, ["a", 1, None], "light"):
        payload = _payload(
            await gql(SET_PREFERENCE, {"key": "ui.theme", "value": value}, token(SLUG, "viewer")),
            "setPreference",
        )
        assert payload["preference"]["value"] == value
    viewer = await gql("{ viewer { preferences { key value } } }", token=token(SLUG, "viewer"))
    assert viewer.json()["data"]["viewer"]["preferences"] == [{"key": "ui.theme", "value": "light"}]
    bad = _payload(
        await gql(SET_PREFERENCE, {"key": "no spaces", "value": 1}, token(SLUG)), "setPreference"
    )
    assert [e["code"] for e in bad["userErrors"]] == ["INVALID"]


async def test_only_admins_change_agents(tenant: None, gql: Any, token: Any) -> None:
    agent = agent_gid(SLUG, "DATA_ANALYST")
    body = (await gql(SET_STATUS, {"id": agent, "status": "PAUSED"}, token(SLUG))).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    refused = _payload(
        await gql(SET_STATUS, {"id": agent, "status": "RUNNING"}, token(SLUG, "admin")),
        "setAgentStatus",
    )
    assert [e["code"] for e in refused["userErrors"]] == ["INVALID"]
