"""Live events over websocket: the contract's subscriptions, end to end.

Every test uses a real websocket client against a gateway on a real port (the session's
app served by uvicorn, or a gateway process of its own), and real mutations through the
gateway: an event exists because a change committed, and travels outbox → relay → Redis
Streams → hub → socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from starlette.applications import Starlette

from domain.ids import to_global_id
from switchboard.live.relay import Relay
from tests.conftest import Servers
from tests.support.edge import gateway
from tests.support.jobs import Tenant, fresh_tenant, new_work, wait_for
from tests.support.live import (
    ACTIVITY_STREAM,
    LEGACY_WS,
    TENANT_EVENTS,
    GatewayProcess,
    LiveClient,
    served,
)

CREATE = """mutation($input: CreateCampaignInput!) {
  createCampaign(input: $input) { campaign { id name } userErrors { code } } }"""
SET_AGENT = """mutation($id: ID!, $status: AgentStatus!) {
  setAgentStatus(id: $id, status: $status) { agent { id status } userErrors { code } } }"""
REPORT = """mutation($input: ActivityProgressInput!) { reportActivityProgress(input: $input) {
  activity { id status } userErrors { code message } } }"""
QUERY = "query { tenant { name } }"


@pytest.fixture(scope="module")
async def tenants(servers: Servers) -> tuple[Tenant, Tenant]:
    return (
        await fresh_tenant(servers.database_url, "live-a"),
        await fresh_tenant(servers.database_url, "live-b"),
    )


@pytest.fixture(scope="module")
async def url(app: Starlette) -> AsyncIterator[str]:
    async with served(app) as ws_url:
        yield ws_url


@pytest.fixture
async def paused_relay(app: Starlette) -> AsyncIterator[Relay]:
    """The session gateway's relay, stopped for the test (so the test decides when rows are
    relayed), then started again."""
    relay: Relay = app.state.relay
    await relay.stop()
    try:
        yield relay
    finally:
        relay.start()


async def create_campaign(gql: Any, token: str, name: str) -> str:
    response = await gql(CREATE, {"input": {"name": name}}, token)
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["createCampaign"]["campaign"]["id"]


async def campaign_names(live: LiveClient, count: int, sub: str = "1") -> list[str]:
    names = []
    for _ in range(count):
        got, data = await live.next_data()
        assert got == sub
        event = data["tenantEvents"]
        assert event["type"] == "CAMPAIGN_UPDATED", event
        names.append(event["campaign"]["name"])
    return names


# Delivery


async def test_an_event_carries_its_objects_as_of_delivery(
    url: str, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[0].slug
    async with LiveClient.connect(url, token(slug)) as live:
        await live.subscribe("1", TENANT_EVENTS)
        campaign = await create_campaign(gql, token(slug), "Live launch")
        sub, data = await live.next_data()
    event = data["tenantEvents"]
    assert sub == "1"
    assert event["type"] == "CAMPAIGN_UPDATED"
    assert event["campaign"] == {"id": campaign, "name": "Live launch", "status": "DRAFT"}
    assert event["approval"] is None and event["spend"] is None
    assert event["id"].count("-") == 1 and event["occurredAt"]


async def test_events_arrive_in_commit_order_each_once(
    url: str, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[0].slug
    names = [f"Order {n}" for n in range(12)]
    async with LiveClient.connect(url, token(slug)) as live:
        await live.subscribe("1", TENANT_EVENTS)
        for name in names:
            await create_campaign(gql, token(slug), name)
        assert await campaign_names(live, len(names)) == names


async def test_types_filter_what_a_subscription_receives(
    url: str, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    tenant = tenants[0]
    admin = token(tenant.slug, "admin")
    agent = to_global_id("Agent", tenant.agent("SEO_SPECIALIST"))
    async with LiveClient.connect(url, admin) as live:
        await live.subscribe("agents", TENANT_EVENTS, {"types": ["AGENT_STATUS_CHANGED"]})
        await live.subscribe("all", TENANT_EVENTS)
        await create_campaign(gql, admin, "Not for the agents view")
        paused = await gql(SET_AGENT, {"id": agent, "status": "PAUSED"}, admin)
        assert paused.json()["data"]["setAgentStatus"]["userErrors"] == []
        await gql(SET_AGENT, {"id": agent, "status": "IDLE"}, admin)
        received: dict[str, list[str]] = {"agents": [], "all": []}
        while len(received["agents"]) < 2 or len(received["all"]) < 3:
            sub, data = await live.next_data()
            received[sub].append(data["tenantEvents"]["type"])
    assert received["agents"] == ["AGENT_STATUS_CHANGED"] * 2
    assert received["all"] == ["CAMPAIGN_UPDATED"] + ["AGENT_STATUS_CHANGED"] * 2


async def test_a_subscriber_sees_only_its_own_tenant(
    url: str, tenants: tuple[Tenant, Tenant], gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    mine, theirs = tenants
    async with LiveClient.connect(url, token(mine.slug)) as live:
        await live.subscribe("1", TENANT_EVENTS)
        await create_campaign(gql, token(theirs.slug), "Theirs")
        await create_campaign(gql, token(mine.slug), "Mine")
        assert await campaign_names(live, 1) == ["Mine"]

        # Another tenant's activity is as unknown as one that never existed.
        (foreign,) = await new_work(db_conn, theirs, "COPYWRITER")
        for activity in (foreign, uuid.uuid4()):
            variables = {"activityId": to_global_id("Activity", activity)}
            await live.subscribe(f"s-{activity}", ACTIVITY_STREAM, variables)
            error = await live.receive()
            assert error["type"] == "error"
            assert error["payload"][0]["message"] == "No activity has this ID."
            assert error["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_activity_streams_its_status_and_text_in_order(
    url: str,
    tenants: tuple[Tenant, Tenant],
    gql: Any,
    agent_token: Any,
    token: Any,
    db_conn: asyncpg.Connection,
) -> None:
    tenant = tenants[1]
    (activity,) = await new_work(db_conn, tenant, "COPYWRITER")
    gid = to_global_id("Activity", activity)
    agent = agent_token(tenant.slug, "COPYWRITER")

    # Its QUEUED event in the log before the subscription starts at the log's end (else a
    # relay pass that came after the subscription would deliver it first).
    async def queued_relayed() -> bool:
        return bool(
            await db_conn.fetchval(
                "SELECT bool_and(relayed) FROM activity_stream_events WHERE activity_id = $1",
                activity,
            )
        )

    await wait_for(queued_relayed, 10)
    async with LiveClient.connect(url, token(tenant.slug)) as live:
        await live.subscribe("1", ACTIVITY_STREAM, {"activityId": gid})
        reports = [
            {"status": "RUNNING", "chunk": "Hello "},
            {"chunk": "world"},
            {"chunk": "."},
            {"status": "AWAITING_APPROVAL"},
        ]
        for report in reports:
            response = await gql(REPORT, {"input": {"activityId": gid, **report}}, agent)
            assert response.json()["data"]["reportActivityProgress"]["userErrors"] == []
        events = [(await live.next_data())[1]["activityStream"] for _ in range(5)]
    assert [(e["kind"], e["text"] or e["status"]) for e in events] == [
        ("STATUS", "RUNNING"),
        ("TOKEN", "Hello "),
        ("TOKEN", "world"),
        ("TOKEN", "."),
        ("STATUS", "AWAITING_APPROVAL"),
    ]
    assert all(e["activityId"] == gid for e in events)
    assert sorted(events, key=lambda e: tuple(map(int, e["id"].split("-")))) == events

    # The agent follows its own activity; another agent of the tenant may not.
    other = agent_token(tenant.slug, "SEO_SPECIALIST")
    async with LiveClient.connect(url, agent) as live:
        await live.subscribe("mine", ACTIVITY_STREAM, {"activityId": gid, "after": "0-0"})
        assert (await live.next_data())[1]["activityStream"]["status"] == "QUEUED"
    async with LiveClient.connect(url, other) as live:
        await live.subscribe("theirs", ACTIVITY_STREAM, {"activityId": gid})
        assert (await live.receive())["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        await live.subscribe("tenant", TENANT_EVENTS)
        assert (await live.receive())["payload"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_spend_and_approval_events_resolve_their_objects_when_delivered(
    url: str,
    tenants: tuple[Tenant, Tenant],
    gql: Any,
    agent_token: Any,
    token: Any,
    db_conn: asyncpg.Connection,
) -> None:
    tenant = tenants[1]
    (activity,) = await new_work(db_conn, tenant, "PAID_ADS_MANAGER", kind="AD_SET")
    gid = to_global_id("Activity", activity)
    agent = agent_token(tenant.slug, "PAID_ADS_MANAGER")
    call = {
        "activityId": gid,
        "provider": "ollama",
        "model": "llama-3.1-70b",
        "inputTokens": 1000,
        "outputTokens": 200,
        "costUsd": "0.250000",
        "latencyMs": 800,
    }
    record = """mutation($input: RecordLlmCallInput!) {
      recordLlmCall(input: $input) { userErrors { code } } }"""
    async with LiveClient.connect(url, token(tenant.slug)) as live:
        types = ["SPEND_UPDATED", "APPROVAL_CREATED"]
        await live.subscribe("1", TENANT_EVENTS, {"types": types})
        await gql(REPORT, {"input": {"activityId": gid, "status": "RUNNING"}}, agent)
        await gql(record, {"input": call}, agent)
        await gql(REPORT, {"input": {"activityId": gid, "status": "AWAITING_APPROVAL"}}, agent)
        spent = (await live.next_data())[1]["tenantEvents"]
        approved = (await live.next_data())[1]["tenantEvents"]
    month_to_date = await db_conn.fetchrow(
        "SELECT sum(cost_usd) AS total, count(*) AS calls FROM llm_calls "
        "WHERE tenant_id = $1 AND created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') "
        "AT TIME ZONE 'UTC'",
        tenant.id,
    )
    assert spent["type"] == "SPEND_UPDATED"
    assert spent["spend"]["callCount"] == month_to_date["calls"]
    assert spent["spend"]["totalUsd"] == f"{month_to_date['total']:.6f}"
    assert spent["activity"]["id"] == gid
    assert approved["type"] == "APPROVAL_CREATED"
    assert approved["spend"] is None
    assert approved["approval"]["status"] == "PENDING"
    assert approved["approval"]["riskLevel"] == "HIGH"
    assert approved["approval"]["activity"]["id"] == gid
    assert approved["activity"] == {
        "id": gid,
        "status": "AWAITING_APPROVAL",
        "priority": 5,
        "agent": {
            "id": to_global_id("Agent", tenant.agent("PAID_ADS_MANAGER")),
            "role": "PAID_ADS_MANAGER",
        },
    }


async def test_the_legacy_protocol_carries_the_same_events(
    url: str, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[0].slug
    async with LiveClient.connect(url, token(slug), protocol=LEGACY_WS) as live:
        await live.subscribe("1", TENANT_EVENTS)
        await create_campaign(gql, token(slug), "Legacy")
        message = await live.receive()
        assert message["type"] == "data" and message["id"] == "1"
        assert message["payload"]["data"]["tenantEvents"]["campaign"]["name"] == "Legacy"
        await live.send({"id": "1", "type": "stop"})
        await live.send({"type": "connection_terminate"})
        assert (await live.closed())[0] == 1000


# Resuming


async def test_resuming_with_after_loses_and_repeats_nothing(
    url: str, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[0].slug
    async with LiveClient.connect(url, token(slug)) as live:
        await live.subscribe("1", TENANT_EVENTS)
        await create_campaign(gql, token(slug), "Before")
        _, data = await live.next_data()
        last_seen = data["tenantEvents"]["id"]
    # Disconnected: these happen while nobody listens.
    missed = [f"Missed {n}" for n in range(5)]
    for name in missed:
        await create_campaign(gql, token(slug), name)

    # Resume, while more changes commit during the replay: the seam must hold.
    later = [f"During {n}" for n in range(10)]
    async with LiveClient.connect(url, token(slug)) as live:
        await live.subscribe("1", TENANT_EVENTS, {"after": last_seen})
        writes = asyncio.gather(*(create_campaign(gql, token(slug), name) for name in later))
        received = await campaign_names(live, len(missed) + len(later))
        await writes
        await create_campaign(gql, token(slug), "After")
        assert await campaign_names(live, 1) == ["After"]
    assert received[: len(missed)] == missed
    assert sorted(received[len(missed) :]) == sorted(later)  # concurrent commits: any order


async def test_a_replay_from_beyond_the_24_hour_log_says_so(
    url: str, tenants: tuple[Tenant, Tenant], token: Any
) -> None:
    day_and_more_ago_ms = int((time.time() - 25 * 3600) * 1000)
    async with LiveClient.connect(url, token(tenants[1].slug)) as live:
        await live.subscribe("1", TENANT_EVENTS, {"after": f"{day_and_more_ago_ms}-0"})
        error = await live.receive()
    assert error["type"] == "error"
    assert error["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "24-hour" in error["payload"][0]["message"]


# Auth


async def test_an_expired_token_closes_with_4401_and_resumes(
    url: str, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[0].slug
    async with LiveClient.connect(url, token(slug, ttl_s=2)) as live:
        await live.subscribe("1", TENANT_EVENTS)
        await create_campaign(gql, token(slug), "Before expiry")
        _, data = await live.next_data()
        code, reason = await live.closed()
    assert code == 4401 and "expired" in reason.lower()
    await create_campaign(gql, token(slug), "While away")
    async with LiveClient.connect(url, token(slug)) as live:
        await live.subscribe("1", TENANT_EVENTS, {"after": data["tenantEvents"]["id"]})
        assert await campaign_names(live, 1) == ["While away"]


@pytest.mark.parametrize(
    "init",
    [
        {"type": "connection_init"},
        {"type": "connection_init", "payload": {"authorization": "Bearer not-a-token"}},
        {"type": "connection_init", "payload": {"authorization": 42}},
    ],
)
async def test_connection_init_without_a_valid_token_closes_with_4401(
    url: str, init: dict[str, Any]
) -> None:
    async with LiveClient.connect(url) as live:
        await live.send(init)
        assert (await live.closed())[0] == 4401


# Bad input


async def _closed_by(url: str, token: str | None, *messages: Any) -> tuple[int | None, str]:
    async with LiveClient.connect(url, token) as live:
        for message in messages:
            if isinstance(message, dict):
                await live.send(message)
            else:
                await live.socket.send(message)
        return await live.closed()


async def test_protocol_violations_close_with_the_protocols_codes(
    url: str, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[0].slug
    subscribe = {"id": "1", "type": "subscribe", "payload": {"query": TENANT_EVENTS}}
    async with LiveClient.connect(url, token(slug)) as bystander:
        await bystander.subscribe("1", TENANT_EVENTS)

        assert (await _closed_by(url, None, subscribe))[0] == 4401  # before connection_ack
        assert (await _closed_by(url, token(slug), "{not json"))[0] == 4400
        assert (await _closed_by(url, token(slug), '["a list"]'))[0] == 4400
        assert (await _closed_by(url, token(slug), {"type": "shout"}))[0] == 4400
        assert (await _closed_by(url, token(slug), {"type": "subscribe", "id": ""}))[0] == 4400
        assert (await _closed_by(url, token(slug), {"type": "subscribe", "id": "9"}))[0] == 4400
        again = {"type": "connection_init", "payload": {}}
        assert (await _closed_by(url, token(slug), again))[0] == 4429
        code, reason = await _closed_by(url, token(slug), subscribe, subscribe)
        assert code == 4409 and "1" in reason

        # Every one of those connections failed alone; this one carries on.
        await create_campaign(gql, token(slug), "Still here")
        assert await campaign_names(bystander, 1) == ["Still here"]


async def test_a_client_without_a_known_subprotocol_is_refused(url: str) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, subprotocols=["mqtt"]) as socket:  # type: ignore[list-item]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(socket.recv(), 10)
        assert socket.close_code == 4406


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"query": "subscription { nope }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": "subscription {"}, "GRAPHQL_PARSE_FAILED"),
        ({"query": QUERY}, "BAD_REQUEST"),
        ({"query": TENANT_EVENTS, "variables": {"after": "yesterday"}}, "BAD_USER_INPUT"),
        ({"query": TENANT_EVENTS, "variables": {"types": ["NOT_A_TYPE"]}}, "BAD_USER_INPUT"),
        ({"query": ACTIVITY_STREAM, "variables": {"activityId": "nope"}}, "BAD_USER_INPUT"),
        ({"query": ACTIVITY_STREAM, "variables": {}}, "BAD_USER_INPUT"),
        ({"query": 7}, "BAD_REQUEST"),
        ({"query": TENANT_EVENTS, "variables": []}, "BAD_REQUEST"),
        (
            {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
            "PERSISTED_QUERY_NOT_FOUND",
        ),
    ],
)
async def test_a_subscription_that_cannot_start_gets_an_error_and_the_connection_lives(
    url: str,
    tenants: tuple[Tenant, Tenant],
    gql: Any,
    token: Any,
    payload: dict[str, Any],
    code: str,
) -> None:
    slug = tenants[1].slug
    async with LiveClient.connect(url, token(slug)) as live:
        await live.send({"id": "bad", "type": "subscribe", "payload": payload})
        error = await live.receive()
        assert error["type"] == "error" and error["id"] == "bad"
        assert error["payload"][0]["extensions"]["code"] == code
        # The same id is free again, and the connection works.
        await live.subscribe("bad", TENANT_EVENTS)
        await create_campaign(gql, token(slug), f"After {code}")
        assert await campaign_names(live, 1, sub="bad") == [f"After {code}"]


async def test_a_mobile_token_subscribes_only_by_manifest_id(url: str, token: Any) -> None:
    async with LiveClient.connect(url, token("acme", audience="mobile")) as live:
        await live.subscribe("1", TENANT_EVENTS)
        error = await live.receive()
    assert error["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"


async def test_a_connection_that_never_initialises_is_closed(servers: Servers) -> None:
    async with gateway(servers, live_init_timeout_s=0.2) as (app, _), served(app) as url:
        assert (await _closed_by(url, None))[0] == 4408


# Slow consumers


async def test_a_slow_consumer_is_closed_and_never_slows_the_others(
    servers: Servers,
    tenants: tuple[Tenant, Tenant],
    gql: Any,
    agent_token: Any,
    token: Any,
    db_conn: asyncpg.Connection,
) -> None:
    tenant = tenants[1]
    activities = await new_work(db_conn, tenant, "DATA_ANALYST", count=8)
    agent = agent_token(tenant.slug, "DATA_ANALYST")
    rounds, chunk = 16, "x" * 60_000
    expected = len(activities) * (rounds + 1)  # RUNNING, then a TOKEN per round
    async with (
        gateway(servers, live_send_queue=16) as (app, _),
        served(app) as url,
        LiveClient.connect(url, token(tenant.slug)) as fast,
        LiveClient.connect(url, token(tenant.slug), receive_buffer=8192) as slow,
    ):
        for n, activity in enumerate(activities):
            variables = {"activityId": to_global_id("Activity", activity)}
            await fast.subscribe(str(n), ACTIVITY_STREAM, variables)
            await slow.subscribe(str(n), ACTIVITY_STREAM, variables)
        slow.socket.transport.pause_reading()  # the slow client stops reading its socket

        async def read_all() -> int:
            for _ in range(expected):
                await fast.next_data()
            return expected

        reading = asyncio.create_task(read_all())
        for round_ in range(rounds):
            for activity in activities:
                report = {"activityId": to_global_id("Activity", activity), "chunk": chunk}
                if round_ == 0:
                    report["status"] = "RUNNING"
                response = await gql(REPORT, {"input": report}, agent)
                assert response.json()["data"]["reportActivityProgress"]["userErrors"] == []
        assert await reading == expected  # every event, while the slow one lagged
        slow.socket.transport.resume_reading()
        code, reason = await slow.closed()
    assert code == 1013 and "after" in reason


# Several gateways


async def test_a_second_gateway_process_delivers_the_same_events(
    url: str,
    tenants: tuple[Tenant, Tenant],
    gql: Any,
    token: Any,
    servers: Servers,
    tmp_path: Path,
) -> None:
    slug = tenants[0].slug
    other = GatewayProcess(servers.database_url, servers.redis_url, tmp_path / "gateway.log")
    try:
        await other.ready()
        async with (
            LiveClient.connect(url, token(slug)) as here,
            LiveClient.connect(other.url, token(slug)) as there,
        ):
            await here.subscribe("1", TENANT_EVENTS)
            await there.subscribe("1", TENANT_EVENTS)
            names = [f"Shared {n}" for n in range(5)]
            for name in names:
                await create_campaign(gql, token(slug), name)
            assert await campaign_names(here, 5) == names
            assert await campaign_names(there, 5) == names
    finally:
        other.stop()


async def test_a_gateway_killed_after_its_commit_loses_no_event(
    url: str,
    tenants: tuple[Tenant, Tenant],
    token: Any,
    servers: Servers,
    db_conn: asyncpg.Connection,
    paused_relay: Relay,
    tmp_path: Path,
) -> None:
    """The gateway commits the change and its event and dies before anything publishes it:
    the next relay to run (here, the session gateway's, started again) publishes it, once."""
    import httpx

    slug = tenants[1].slug
    doomed = GatewayProcess(
        servers.database_url,
        servers.redis_url,
        tmp_path / "doomed.log",
        SWITCHBOARD_LIVE_RELAY_OFF="1",
    )
    try:
        await doomed.ready()
        async with LiveClient.connect(url, token(slug)) as live:
            await live.subscribe("1", TENANT_EVENTS)
            async with httpx.AsyncClient() as http:
                response = await http.post(
                    f"http://127.0.0.1:{doomed.port}/graphql",
                    json={"query": CREATE, "variables": {"input": {"name": "Orphan"}}},
                    headers={"authorization": f"Bearer {token(slug)}"},
                )
            assert response.json()["data"]["createCampaign"]["userErrors"] == []
            doomed.kill()
            unrelayed = await db_conn.fetchval(
                "SELECT count(*) FROM tenant_events WHERE tenant_id = $1 AND NOT relayed",
                tenants[1].id,
            )
            assert unrelayed == 1  # committed, never published

            paused_relay.start()
            assert await campaign_names(live, 1) == ["Orphan"]
    finally:
        doomed.kill()


async def test_a_relay_that_dies_between_publish_and_mark_publishes_nothing_twice(
    url: str,
    tenants: tuple[Tenant, Tenant],
    gql: Any,
    token: Any,
    paused_relay: Relay,
    db_conn: asyncpg.Connection,
) -> None:
    slug = tenants[1].slug

    def crash() -> None:
        raise RuntimeError("the relay's process died here")

    async with LiveClient.connect(url, token(slug)) as live:
        await live.subscribe("1", TENANT_EVENTS)
        await create_campaign(gql, token(slug), "Published, not marked")
        published = paused_relay.published
        with pytest.raises(RuntimeError):
            await paused_relay.relay_once(before_commit=crash)
        assert paused_relay.published == published + 1  # in Redis, but not marked relayed
        assert (
            await db_conn.fetchval(
                "SELECT count(*) FROM tenant_events WHERE tenant_id = $1 AND NOT relayed",
                tenants[1].id,
            )
            == 1
        )
        assert await paused_relay.relay_pending() == 1  # the row again…
        assert paused_relay.published == published + 1  # …and its publish was skipped
        await create_campaign(gql, token(slug), "Next")
        await paused_relay.relay_pending()
        assert await campaign_names(live, 2) == ["Published, not marked", "Next"]


async def test_relayed_events_are_deleted_after_a_week_and_unrelayed_ones_never(
    tenants: tuple[Tenant, Tenant], db_conn: asyncpg.Connection, paused_relay: Relay
) -> None:
    rows = await db_conn.fetch(
        "INSERT INTO tenant_events (tenant_id, type, occurred_at, relayed) VALUES "
        "($1, 'CAMPAIGN_UPDATED', now() - interval '8 days', true), "
        "($1, 'CAMPAIGN_UPDATED', now() - interval '8 days', false), "
        "($1, 'CAMPAIGN_UPDATED', now() - interval '6 days', true) RETURNING id",
        tenants[0].id,
    )
    ids = [r["id"] for r in rows]
    try:
        await paused_relay.purge()
        left = await db_conn.fetch("SELECT id FROM tenant_events WHERE id = ANY($1)", ids)
        assert sorted(r["id"] for r in left) == ids[1:]
    finally:  # the unrelayed one is this test's invention: never relay it
        await db_conn.execute("DELETE FROM tenant_events WHERE id = ANY($1)", ids)
