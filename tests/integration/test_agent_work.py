"""The agent runtimes' mutations, reportActivityProgress and recordLlmCall, through the
gateway with agent tokens: ownership, the state machine, streaming, budgets and audit."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from domain.ids import to_global_id
from switchboard.live.log import activity_stream
from tests.conftest import Servers
from tests.support.jobs import Tenant, fresh_tenant, new_work, wait_for

REPORT = """mutation($input: ActivityProgressInput!) { reportActivityProgress(input: $input) {
  activity { id status output firstTokenAt failureReason approval { status riskLevel } }
  userErrors { field message code } } }"""
RECORD = """mutation($input: RecordLlmCallInput!) { recordLlmCall(input: $input) {
  llmCall { id costUsd createdAt provider model inputTokens outputTokens latencyMs
            activity { id costUsd } }
  userErrors { field message code } } }"""


def _call(activity: uuid.UUID, cost: str = "0.012500", **extra: Any) -> dict[str, Any]:
    return {
        "activityId": to_global_id("Activity", activity),
        "provider": "ollama",
        "model": "llama-3.1-70b",
        "inputTokens": 1200,
        "outputTokens": 300,
        "costUsd": cost,
        "latencyMs": 950,
        **extra,
    }


@pytest.fixture(scope="module")
async def tenants(servers: Servers) -> tuple[Tenant, Tenant]:
    return (
        await fresh_tenant(servers.database_url, "agents-a"),
        await fresh_tenant(servers.database_url, "agents-b"),
    )


async def _equal(found: Any, expected: list[Any]) -> list[Any] | None:
    value = await found
    return value if value == expected else None


def _data(response: Any, field: str) -> dict[str, Any]:
    body = response.json()
    assert "errors" not in body, body
    return body["data"][field]


async def test_an_agent_reports_its_run_from_start_to_approval(
    tenants: tuple[Tenant, Tenant],
    gql: Any,
    agent_token: Any,
    db_conn: asyncpg.Connection,
    servers: Servers,
    app: Starlette,
) -> None:
    tenant = tenants[0]
    (activity,) = await new_work(db_conn, tenant, "COPYWRITER", kind="EMAIL")
    gid = to_global_id("Activity", activity)
    me = agent_token(tenant.slug, "COPYWRITER")

    started = _data(
        await gql(
            REPORT, {"input": {"activityId": gid, "status": "RUNNING", "chunk": "Hello "}}, me
        ),
        "reportActivityProgress",
    )
    assert started["userErrors"] == []
    assert started["activity"]["status"] == "RUNNING"
    assert started["activity"]["output"] == "Hello "
    assert started["activity"]["firstTokenAt"] is not None
    more = _data(
        await gql(REPORT, {"input": {"activityId": gid, "chunk": "world."}}, me),
        "reportActivityProgress",
    )
    assert more["activity"]["output"] == "Hello world."
    assert more["activity"]["firstTokenAt"] == started["activity"]["firstTokenAt"]

    recorded = _data(await gql(RECORD, {"input": _call(activity)}, me), "recordLlmCall")
    assert recorded["userErrors"] == []
    assert recorded["llmCall"]["costUsd"] == "0.012500"
    assert recorded["llmCall"]["activity"] == {"id": gid, "costUsd": "0.012500"}

    finished = _data(
        await gql(REPORT, {"input": {"activityId": gid, "status": "AWAITING_APPROVAL"}}, me),
        "reportActivityProgress",
    )
    assert finished["activity"]["status"] == "AWAITING_APPROVAL"
    assert finished["activity"]["approval"] == {"status": "PENDING", "riskLevel": "HIGH"}
    assert (
        await db_conn.fetchval(
            "SELECT d.status FROM deliverables d JOIN activities a ON a.deliverable_id = d.id "
            "WHERE a.id = $1",
            activity,
        )
        == "IN_REVIEW"
    )
    events = [
        r["type"]
        for r in await db_conn.fetch(
            "SELECT type FROM tenant_events WHERE activity_id = $1 ORDER BY id", activity
        )
    ]
    assert events[-2:] == ["ACTIVITY_STATUS_CHANGED", "APPROVAL_CREATED"]
    assert "SPEND_UPDATED" in events

    # The activity's stream, as the relay published it from the outbox (switchboard/live/).
    redis = Redis.from_url(servers.redis_url)

    async def streamed() -> list[tuple[str, str]]:
        entries = await redis.xrange(activity_stream(activity))
        events = [orjson.loads(fields[b"e"]) for _, fields in entries]
        return [(e["kind"], e["text"] or e["status"]) for e in events]

    expected = [
        ("STATUS", "QUEUED"),
        ("STATUS", "RUNNING"),
        ("TOKEN", "Hello "),
        ("TOKEN", "world."),
        ("STATUS", "AWAITING_APPROVAL"),
    ]
    try:
        assert await wait_for(lambda: _equal(streamed(), expected)) == expected
    finally:
        await redis.aclose()

    await app.state.services.audit.flush()
    audited = await db_conn.fetch(
        "SELECT action, actor_kind, actor_id FROM audit_logs WHERE tenant_id = $1 "
        "AND action IN ('reportActivityProgress', 'recordLlmCall') ORDER BY id",
        tenant.id,
    )
    assert [r["action"] for r in audited] == [
        "reportActivityProgress",
        "reportActivityProgress",
        "recordLlmCall",
        "reportActivityProgress",
    ]
    assert {(r["actor_kind"], r["actor_id"]) for r in audited} == {
        ("AGENT", tenant.agent("COPYWRITER"))
    }


async def test_an_agent_touches_only_its_own_activities(
    tenants: tuple[Tenant, Tenant], gql: Any, agent_token: Any, db_conn: asyncpg.Connection
) -> None:
    """Another agent's activity in the same tenant: FORBIDDEN; another tenant's, or an
    unknown one: NOT_FOUND; a malformed ID: INVALID. Nothing changes."""
    tenant, other = tenants
    (theirs,) = await new_work(db_conn, tenant, "COPYWRITER")
    (foreign,) = await new_work(db_conn, other, "SEO_SPECIALIST")
    me = agent_token(tenant.slug, "SEO_SPECIALIST")
    cases = {
        to_global_id("Activity", theirs): "FORBIDDEN",
        to_global_id("Activity", foreign): "NOT_FOUND",
        to_global_id("Activity", uuid.uuid4()): "NOT_FOUND",
        to_global_id("Campaign", uuid.uuid4()): "NOT_FOUND",
        "act_nothex": "INVALID",
    }
    for gid, code in cases.items():
        report = _data(
            await gql(
                REPORT, {"input": {"activityId": gid, "status": "RUNNING", "chunk": "x"}}, me
            ),
            "reportActivityProgress",
        )
        assert report["activity"] is None
        assert [(e["code"], e["field"]) for e in report["userErrors"]] == [
            (code, ["input", "activityId"])
        ], gid
        record = _data(
            await gql(RECORD, {"input": {**_call(theirs), "activityId": gid}}, me), "recordLlmCall"
        )
        assert record["llmCall"] is None
        assert [e["code"] for e in record["userErrors"]] == [code], gid
    for activity in (theirs, foreign):
        row = await db_conn.fetchrow(
            "SELECT status, output, cost_usd FROM activities WHERE id = $1", activity
        )
        assert tuple(row) == ("QUEUED", None, Decimal(0))


async def test_people_may_not_call_the_agent_mutations(
    tenants: tuple[Tenant, Tenant], gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    tenant = tenants[0]
    (activity,) = await new_work(db_conn, tenant, "COPYWRITER")
    gid = to_global_id("Activity", activity)
    for local in ("owner", "admin", "marketer", "viewer"):
        me = token(tenant.slug, local)
        for query, variables in (
            (REPORT, {"input": {"activityId": gid, "status": "RUNNING"}}),
            (RECORD, {"input": _call(activity)}),
        ):
            body = (await gql(query, variables, me)).json()
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", (local, body)
    assert await db_conn.fetchval("SELECT status FROM activities WHERE id = $1", activity) == (
        "QUEUED"
    )


async def test_status_changes_follow_the_state_machine(
    tenants: tuple[Tenant, Tenant], gql: Any, agent_token: Any, db_conn: asyncpg.Connection
) -> None:
    tenant = tenants[0]
    (activity,) = await new_work(db_conn, tenant, "DATA_ANALYST", kind="REPORT")
    gid = to_global_id("Activity", activity)
    me = agent_token(tenant.slug, "DATA_ANALYST")

    async def report(**fields: Any) -> list[tuple[str, list[str]]]:
        payload = _data(
            await gql(REPORT, {"input": {"activityId": gid, **fields}}, me),
            "reportActivityProgress",
        )
        return [(e["code"], e["field"]) for e in payload["userErrors"]]

    assert await report(status="AWAITING_APPROVAL") == [("INVALID_STATE", ["input", "status"])]
    assert await report(status="COMPLETED") == [("INVALID_STATE", ["input", "status"])]
    assert await report(chunk="too early") == [("INVALID_STATE", ["input", "chunk"])]
    assert await report(status="RUNNING", failureReason="no") == [
        ("INVALID", ["input", "failureReason"])
    ]
    assert await report() == [("INVALID", ["input"])]
    record = _data(await gql(RECORD, {"input": _call(activity)}, me), "recordLlmCall")
    assert [e["code"] for e in record["userErrors"]] == ["INVALID_STATE"]
    assert (
        await db_conn.fetchval("SELECT count(*) FROM llm_calls WHERE activity_id = $1", activity)
        == 0
    )

    assert await report(status="RUNNING") == []
    assert await report(status="RUNNING", chunk="Working.") == []  # RUNNING again: fine
    assert await report(status="FAILED", failureReason="The data source is down.") == []
    row = await db_conn.fetchrow(
        "SELECT status, failure_reason, output, completed_at FROM activities WHERE id = $1",
        activity,
    )
    assert (row["status"], row["failure_reason"], row["output"]) == (
        "FAILED",
        "The data source is down.",
        "Working.",
    )
    assert row["completed_at"] is not None
    assert await report(status="RUNNING") == [("INVALID_STATE", ["input", "status"])]
    assert await report(chunk="late") == [("INVALID_STATE", ["input", "chunk"])]


async def test_record_llm_call_checks_its_figures(
    tenants: tuple[Tenant, Tenant], gql: Any, agent_token: Any, db_conn: asyncpg.Connection
) -> None:
    tenant = tenants[0]
    (activity,) = await new_work(db_conn, tenant, "CONTENT_RESEARCHER", kind="REPORT")
    me = agent_token(tenant.slug, "CONTENT_RESEARCHER")
    gid = to_global_id("Activity", activity)
    _data(
        await gql(REPORT, {"input": {"activityId": gid, "status": "RUNNING"}}, me),
        "reportActivityProgress",
    )
    for fields, path in (
        ({"inputTokens": -1}, ["input", "inputTokens"]),
        ({"costUsd": "0.0000001"}, ["input", "costUsd"]),
        ({"provider": " "}, ["input", "provider"]),
        ({"latencyMs": -5}, ["input", "latencyMs"]),
    ):
        payload = _data(
            await gql(RECORD, {"input": _call(activity, **fields)}, me), "recordLlmCall"
        )
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", path)]
    assert (
        await db_conn.fetchval("SELECT count(*) FROM llm_calls WHERE activity_id = $1", activity)
        == 0
    )


async def test_a_spent_activity_budget_stops_an_external_run(
    tenants: tuple[Tenant, Tenant], gql: Any, agent_token: Any, db_conn: asyncpg.Connection
) -> None:
    """The call that reaches the agent's cap is kept (it was made); the activity stops
    FAILED with BUDGET_EXCEEDED and takes nothing more."""
    tenant = tenants[1]
    agent = tenant.agent("PAID_ADS_MANAGER")
    await db_conn.execute("UPDATE agents SET max_cost_usd_per_activity = 0.02 WHERE id = $1", agent)
    (activity,) = await new_work(db_conn, tenant, "PAID_ADS_MANAGER", kind="AD_SET")
    gid = to_global_id("Activity", activity)
    me = agent_token(tenant.slug, "PAID_ADS_MANAGER")
    _data(
        await gql(REPORT, {"input": {"activityId": gid, "status": "RUNNING"}}, me),
        "reportActivityProgress",
    )
    first = _data(await gql(RECORD, {"input": _call(activity, "0.015000")}, me), "recordLlmCall")
    assert first["userErrors"] == []
    assert await db_conn.fetchval("SELECT status FROM activities WHERE id = $1", activity) == (
        "RUNNING"
    )
    second = _data(await gql(RECORD, {"input": _call(activity, "0.010000")}, me), "recordLlmCall")
    assert second["userErrors"] == [] and second["llmCall"]["costUsd"] == "0.010000"
    row = await db_conn.fetchrow(
        "SELECT status, failure_reason, cost_usd FROM activities WHERE id = $1", activity
    )
    assert tuple(row) == ("FAILED", "BUDGET_EXCEEDED", Decimal("0.025000"))
    third = _data(await gql(RECORD, {"input": _call(activity, "0.010000")}, me), "recordLlmCall")
    assert [e["code"] for e in third["userErrors"]] == ["INVALID_STATE"]
    chunk = _data(
        await gql(REPORT, {"input": {"activityId": gid, "chunk": "more"}}, me),
        "reportActivityProgress",
    )
    assert [e["code"] for e in chunk["userErrors"]] == ["INVALID_STATE"]
    assert await db_conn.fetchval(
        "SELECT cost_usd FROM activities WHERE id = $1", activity
    ) == Decimal("0.025000")
