"""Live events over plain HTTP: GraphQL over SSE (graphql-sse, both modes) at
/graphql/stream and Apollo's multipart subscriptions on /graphql, end to end.

Real clients on real ports (the session's gateway served by uvicorn, a gateway of its own
for other settings, or a gateway process), real mutations through the gateway. The
JavaScript clients (graphql-sse, Apollo Client, and graphql-sse's browser build in headless
Chromium) are in test_live_clients.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from domain.ids import parse_id_of, to_global_id
from switchboard.live.websocket import LiveEndpoint
from tests.conftest import Servers, tenant_gid
from tests.e2e.test_live import REPORT, create_campaign
from tests.support.edge import gateway
from tests.support.jobs import Tenant, fresh_tenant, new_work, wait_for
from tests.support.live import (
    ACTIVITY_STREAM,
    TENANT_EVENTS,
    GatewayProcess,
    LiveClient,
    served,
)
from tests.support.streams import MULTIPART_ACCEPT, http_base, multipart, sse

TOKEN_HEADER = "x-graphql-event-stream-token"


@pytest.fixture(scope="module")
async def tenants(servers: Servers) -> tuple[Tenant, Tenant]:
    return (
        await fresh_tenant(servers.database_url, "stream-a"),
        await fresh_tenant(servers.database_url, "stream-b"),
    )


@pytest.fixture(scope="module")
async def urls(app: Starlette) -> AsyncIterator[tuple[str, str]]:
    """(ws URL, http base) of the session's gateway on a real port."""
    async with served(app) as ws_url:
        yield ws_url, http_base(ws_url)


def names_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["tenantEvents"]["campaign"]["name"] for e in events]


def groups_of(app: Starlette, slug: str) -> list[Any]:
    stream = f"sb:live:tenant:{tenant_gid_hex(slug)}"
    return list(app.state.hub.streams.get(stream, {}).values())


def tenant_gid_hex(slug: str) -> str:
    parsed = parse_id_of("Tenant", tenant_gid(slug))
    assert parsed is not None
    return parsed.hex


async def subscribed(app: Starlette, slug: str, members: int) -> bool:
    return sum(len(group.members) for group in groups_of(app, slug)) == members


# SSE, distinct mode


async def test_a_subscription_whose_root_field_has_no_arguments_streams_its_events(
    urls: tuple[str, str],
    app: Starlette,
    tenants: tuple[Tenant, Tenant],
    gql: Any,
    token: Any,
) -> None:
    """The contract's documents all pass arguments; a hand-written one need not (it once
    answered 500)."""
    slug = tenants[0].slug
    bare = "subscription { tenantEvents { id type campaign { name } } }"
    async with sse(urls[1], token(slug), {"query": bare}) as stream:
        assert stream.response.status_code == 200
        await wait_for(lambda: subscribed(app, slug, 1))
        await create_campaign(gql, token(slug), "No arguments")
        _, data = await stream.data()
    assert data["tenantEvents"]["type"] == "CAMPAIGN_UPDATED"
    assert data["tenantEvents"]["campaign"]["name"] == "No arguments"


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_sse_distinct_mode_delivers_in_order_each_once_with_positions(
    urls: tuple[str, str],
    app: Starlette,
    tenants: tuple[Tenant, Tenant],
    gql: Any,
    token: Any,
    method: str,
) -> None:
    slug = tenants[0].slug
    names = [f"SSE {method} {n}" for n in range(6)]
    params = {"query": TENANT_EVENTS} if method == "GET" else None
    payload = {"query": TENANT_EVENTS} if method == "POST" else None
    other = tenants[1].slug
    async with (
        sse(urls[1], token(slug), payload, method=method, params=params) as stream,
        sse(urls[1], token(other), {"query": TENANT_EVENTS}) as elsewhere,
    ):
        assert stream.response.headers["cache-control"] == "no-cache"
        assert stream.response.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in stream.response.headers
        await wait_for(lambda: subscribed(app, slug, 1))
        await wait_for(lambda: subscribed(app, other, 1))
        for name in names:
            await create_campaign(gql, token(slug), name)
        received = [await stream.data() for _ in names]
        # Another tenant's subscriber heard none of it: its first event is its own.
        await create_campaign(gql, token(other), f"Own {method}")
        _, own = await elsewhere.data()
        assert own["tenantEvents"]["campaign"]["name"] == f"Own {method}"
    assert [data["tenantEvents"]["campaign"]["name"] for _, data in received] == names
    assert [event_id for event_id, _ in received] == [d["tenantEvents"]["id"] for _, d in received]
    await wait_for(lambda: subscribed(app, slug, 0))  # the client left: all released


async def test_sse_resumes_by_last_event_id_without_gap_or_duplicate(
    urls: tuple[str, str], app: Starlette, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[1].slug
    published = [f"Cut {n}" for n in range(4)]
    received: list[tuple[str | None, dict[str, Any]]] = []
    async with sse(urls[1], token(slug), {"query": TENANT_EVENTS}) as stream:
        await wait_for(lambda: subscribed(app, slug, 1))
        for name in published[:2]:
            await create_campaign(gql, token(slug), name)
        received += [await stream.data() for _ in range(2)]
    # Cut: what happens now nobody hears; more commit during the resume's replay.
    missed = [f"Missed {n}" for n in range(3)]
    for name in missed:
        await create_campaign(gql, token(slug), name)
    during = [f"During {n}" for n in range(6)]
    last_id = received[-1][0]
    assert last_id is not None
    async with sse(
        urls[1], token(slug), {"query": TENANT_EVENTS}, headers={"last-event-id": last_id}
    ) as stream:
        writes = asyncio.gather(*(create_campaign(gql, token(slug), n) for n in during))
        received += [await stream.data() for _ in range(len(missed) + len(during))]
        await writes
        await create_campaign(gql, token(slug), "After")
        received.append(await stream.data())
    names = [data["tenantEvents"]["campaign"]["name"] for _, data in received]
    ids = [event_id for event_id, _ in received]
    assert len(set(ids)) == len(ids)  # no duplicate
    assert names[:5] == published[:2] + missed
    assert sorted(names[5:-1]) == sorted(during) and names[-1] == "After"
    positions = [tuple(map(int, i.split("-"))) for i in ids if i]
    assert positions == sorted(positions)  # in order


# SSE, single connection


async def test_sse_single_connection_mode_reserves_streams_and_stops_operations(
    urls: tuple[str, str], app: Starlette, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[0].slug
    auth = {"authorization": f"Bearer {token(slug)}"}
    async with httpx.AsyncClient(base_url=urls[1], timeout=15) as http:
        reserved = await http.put("/graphql/stream", headers=auth)
        assert reserved.status_code == 201
        reservation = reserved.text
        headers = {TOKEN_HEADER: reservation}
        async with sse(urls[1], token(slug), method="GET", headers=headers) as stream:
            # A second stream on one reservation is refused.
            second = await http.get(
                "/graphql/stream", headers={**auth, **headers, "accept": "text/event-stream"}
            )
            assert second.status_code == 409
            # Another tenant's user does not know this reservation.
            stranger = {"authorization": f"Bearer {token(tenants[1].slug)}", **headers}
            assert (await http.get("/graphql/stream", headers=stranger)).status_code == 404
            assert (
                await http.post(
                    "/graphql/stream",
                    json={"query": TENANT_EVENTS, "extensions": {"operationId": "x"}},
                    headers=stranger,
                )
            ).status_code == 404
            for operation in ("a", "b"):
                started = await http.post(
                    "/graphql/stream",
                    json={"query": TENANT_EVENTS, "extensions": {"operationId": operation}},
                    headers={**auth, **headers},
                )
                assert started.status_code == 202, started.text
            await wait_for(lambda: subscribed(app, slug, 2))
            assert len(groups_of(app, slug)) == 1  # one execution per event for both
            await create_campaign(gql, token(slug), "Single 1")
            got = [await stream.next() for _ in range(2)]
            assert sorted(e.data["id"] for e in got) == ["a", "b"]
            assert all(e.id == e.data["payload"]["data"]["tenantEvents"]["id"] for e in got)
            stopped = await http.delete(
                "/graphql/stream", params={"operationId": "a"}, headers={**auth, **headers}
            )
            assert stopped.status_code == 200
            completed = await stream.next()
            assert completed is not None
            assert (completed.event, completed.data) == ("complete", {"id": "a"})
            await create_campaign(gql, token(slug), "Single 2")
            event = await stream.next()
            assert event is not None and event.data["id"] == "b"
            assert event.data["payload"]["data"]["tenantEvents"]["campaign"]["name"] == "Single 2"
        # The stream ended: its reservation and operations are gone.
        await wait_for(lambda: subscribed(app, slug, 0))
        gone = await http.post(
            "/graphql/stream",
            json={"query": TENANT_EVENTS, "extensions": {"operationId": "c"}},
            headers={**auth, **headers},
        )
        assert gone.status_code == 404
        unknown = {**auth, TOKEN_HEADER: "not-a-reservation", "accept": "text/event-stream"}
        assert (await http.get("/graphql/stream", headers=unknown)).status_code == 404


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"query": "subscription {"}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "subscription { nope }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": "query { tenant { name } }"}, "BAD_REQUEST"),
        ({"query": ACTIVITY_STREAM, "variables": {"activityId": "nope"}}, "BAD_USER_INPUT"),
    ],
)
async def test_sse_single_connection_refusals_are_the_operations_http_answer(
    urls: tuple[str, str], tenants: tuple[Tenant, Tenant], token: Any, payload: Any, code: str
) -> None:
    auth = {"authorization": f"Bearer {token(tenants[0].slug)}"}
    async with httpx.AsyncClient(base_url=urls[1], timeout=15) as http:
        reservation = (await http.put("/graphql/stream", headers=auth)).text
        headers = {**auth, TOKEN_HEADER: reservation}
        async with sse(urls[1], token(tenants[0].slug), method="GET", headers=headers):
            answer = await http.post(
                "/graphql/stream",
                json={**payload, "extensions": {"operationId": "1"}},
                headers=headers,
            )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["extensions"]["code"] == code


# Multipart


async def test_multipart_delivers_with_positions_and_resumes_with_after(
    urls: tuple[str, str], app: Starlette, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[1].slug
    async with multipart(urls[1], token(slug), {"query": TENANT_EVENTS}) as stream:
        assert stream.response.headers["content-type"].startswith("multipart/mixed")
        assert 'subscriptionSpec="1.0"' in stream.response.headers["content-type"]
        assert stream.response.headers["cache-control"] == "no-cache"
        await wait_for(lambda: subscribed(app, slug, 1))
        await create_campaign(gql, token(slug), "Multi 1")
        first = await stream.data()
        assert stream.heartbeats >= 1  # `{}` as the protocol's heartbeat, at once
    last = first["tenantEvents"]["id"]
    missed = [f"Multi missed {n}" for n in range(3)]
    for name in missed:
        await create_campaign(gql, token(slug), name)
    payload = {"query": TENANT_EVENTS, "variables": {"after": last}}
    async with multipart(urls[1], token(slug), payload) as stream:
        got = [await stream.data() for _ in missed]
        await create_campaign(gql, token(slug), "Multi after")
        got.append(await stream.data())
    assert names_of(got) == [*missed, "Multi after"]


async def test_multipart_refusals_answer_before_any_stream(
    urls: tuple[str, str], tenants: tuple[Tenant, Tenant], token: Any
) -> None:
    async def post(payload: dict[str, Any], bearer: str | None) -> httpx.Response:
        headers = {"accept": MULTIPART_ACCEPT}
        if bearer:
            headers["authorization"] = f"Bearer {bearer}"
        async with httpx.AsyncClient(base_url=urls[1], timeout=15) as http:
            return await http.post("/graphql", json=payload, headers=headers)

    slug = tenants[0].slug
    refused = await post({"query": TENANT_EVENTS}, None)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    refused = await post({"query": "subscription { nope }"}, token(slug))
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    refused = await post({"query": TENANT_EVENTS}, token(slug, audience="mobile"))
    assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
    old = f"{int((time.time() - 25 * 3600) * 1000)}-0"
    refused = await post({"query": TENANT_EVENTS, "variables": {"after": old}}, token(slug))
    assert refused.status_code == 400 and "24-hour" in refused.json()["errors"][0]["message"]


# One live path


async def test_websocket_sse_and_multipart_subscribers_share_one_execution(
    urls: tuple[str, str], app: Starlette, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[0].slug
    async with (
        LiveClient.connect(urls[0], token(slug)) as ws,
        sse(urls[1], token(slug), {"query": TENANT_EVENTS}) as events,
        multipart(urls[1], token(slug), {"query": TENANT_EVENTS}) as parts,
    ):
        await ws.subscribe("1", TENANT_EVENTS)
        await wait_for(lambda: subscribed(app, slug, 3))
        assert len(groups_of(app, slug)) == 1
        await create_campaign(gql, token(slug), "Everywhere")
        _, over_ws = await ws.next_data()
        _, over_sse = await events.data()
        over_multipart = await parts.data()
    assert over_ws == over_sse == over_multipart


# Bad input


async def test_a_missing_or_bad_token_answers_401_before_any_stream(
    urls: tuple[str, str],
) -> None:
    async with httpx.AsyncClient(base_url=urls[1], timeout=15) as http:
        for headers in ({}, {"authorization": "Bearer not-a-token"}):
            for method in ("PUT", "GET", "POST"):
                answer = await http.request(
                    method,
                    "/graphql/stream",
                    params={"query": TENANT_EVENTS} if method == "GET" else None,
                    json={"query": TENANT_EVENTS} if method == "POST" else None,
                    headers={**headers, "accept": "text/event-stream"},
                )
                assert answer.status_code == 401, (method, answer.text)
                assert answer.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("payload", "headers", "code"),
    [
        ({"query": "subscription {"}, {}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "subscription { nope }"}, {}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": TENANT_EVENTS}, {"last-event-id": "yesterday"}, "BAD_USER_INPUT"),
        ({"query": TENANT_EVENTS}, {"last-event-id": "1765000000000-7"}, "BAD_USER_INPUT"),
        ({"query": TENANT_EVENTS, "variables": {"types": ["NOPE"]}}, {}, "BAD_USER_INPUT"),
        ({"query": 7}, {}, "BAD_REQUEST"),
    ],
)
async def test_sse_distinct_refusals_are_a_next_with_errors_then_complete(
    urls: tuple[str, str],
    tenants: tuple[Tenant, Tenant],
    token: Any,
    payload: dict[str, Any],
    headers: dict[str, str],
    code: str,
) -> None:
    async with sse(urls[1], token(tenants[0].slug), payload, headers=headers) as stream:
        events = await stream.rest()
    assert [e.event for e in events] == ["next", "complete"]
    assert events[0].data["errors"][0]["extensions"]["code"] == code


async def test_sse_refuses_text_from_a_mobile_token_and_old_positions(
    urls: tuple[str, str], tenants: tuple[Tenant, Tenant], token: Any
) -> None:
    mobile = token(tenants[0].slug, audience="mobile")
    async with sse(urls[1], mobile, {"query": TENANT_EVENTS}) as stream:
        events = await stream.rest()
    assert events[0].data["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
    old = f"{int((time.time() - 25 * 3600) * 1000)}-0"
    headers = {"last-event-id": old}
    async with sse(
        urls[1], token(tenants[0].slug), {"query": TENANT_EVENTS}, headers=headers
    ) as stream:
        events = await stream.rest()
    assert "24-hour" in events[0].data["errors"][0]["message"]


async def test_another_tenants_activity_is_unknown_over_sse(
    urls: tuple[str, str], tenants: tuple[Tenant, Tenant], token: Any, db_conn: Any
) -> None:
    activity = (await new_work(db_conn, tenants[1], "DATA_ANALYST", count=1))[0]
    variables = {"activityId": to_global_id("Activity", activity)}
    payload = {"query": ACTIVITY_STREAM, "variables": variables}
    async with sse(urls[1], token(tenants[0].slug), payload) as stream:
        events = await stream.rest()
    assert events[0].data["errors"][0]["message"] == "No activity has this ID."


# How streams end


async def test_token_expiry_ends_streams_with_a_terminal_event_and_they_resume(
    urls: tuple[str, str], tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[1].slug
    async with (
        sse(urls[1], token(slug, ttl_s=2), {"query": TENANT_EVENTS}) as events,
        multipart(urls[1], token(slug, ttl_s=2), {"query": TENANT_EVENTS}) as parts,
    ):
        await create_campaign(gql, token(slug), "Before expiry")
        last_id, _ = await events.data()
        await parts.data()
        ending = await events.rest()
        terminal = await parts.next()
        assert await parts.next() is None and parts.ended
    assert [e.event for e in ending] == ["next"]  # no `complete`: the client reconnects
    assert ending[0].data["errors"][0]["extensions"] == {
        "code": "UNAUTHENTICATED",
        "reason": "TOKEN_EXPIRED",
    }
    assert terminal is not None and terminal["payload"] is None
    assert terminal["errors"][0]["extensions"]["reason"] == "TOKEN_EXPIRED"
    await create_campaign(gql, token(slug), "While away")
    headers = {"last-event-id": str(last_id)}
    async with sse(urls[1], token(slug), {"query": TENANT_EVENTS}, headers=headers) as events:
        _, data = await events.data()
    assert data["tenantEvents"]["campaign"]["name"] == "While away"


async def test_a_slow_sse_reader_is_ended_and_never_slows_the_others(
    servers: Servers,
    tenants: tuple[Tenant, Tenant],
    gql: Any,
    agent_token: Any,
    token: Any,
    db_conn: Any,
) -> None:
    tenant = tenants[1]
    activities = await new_work(db_conn, tenant, "DATA_ANALYST", count=8)
    agent = agent_token(tenant.slug, "DATA_ANALYST")
    rounds, chunk = 16, "x" * 60_000  # 7.7 MB: past the kernel's buffers (4 MB)
    expected = len(activities) * (rounds + 1)  # RUNNING, then a TOKEN per round
    auth = {"authorization": f"Bearer {token(tenant.slug)}"}
    async with gateway(servers, live_send_queue=8) as (app, _), served(app) as ws_url:
        base = http_base(ws_url)
        host, port = base.removeprefix("http://").split(":")
        async with httpx.AsyncClient(base_url=base, timeout=15) as http:
            reservation = (await http.put("/graphql/stream", headers=auth)).text
            # The slow reader: the single connection's stream on a socket with a small
            # receive buffer, which it stops reading.
            slow = socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.connect((host, int(port)))
            reader, writer = await asyncio.open_connection(sock=slow)
            writer.write(
                b"GET /graphql/stream HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n"
                + f"authorization: Bearer {token(tenant.slug)}\r\n".encode()
                + f"{TOKEN_HEADER}: {reservation}\r\n\r\n".encode()
            )
            await writer.drain()
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
            reader._transport.pause_reading()  # type: ignore[attr-defined]  # stops reading
            async with contextlib.AsyncExitStack() as stack:
                fast = []
                for n, activity in enumerate(activities):
                    variables = {"activityId": to_global_id("Activity", activity)}
                    payload = {"query": ACTIVITY_STREAM, "variables": variables}
                    fast.append(
                        await stack.enter_async_context(sse(base, token(tenant.slug), payload))
                    )
                    started = await http.post(
                        "/graphql/stream",
                        json={**payload, "extensions": {"operationId": str(n)}},
                        headers={**auth, TOKEN_HEADER: reservation},
                    )
                    assert started.status_code == 202
                await wait_for(lambda: _members(app, 2 * len(activities)))
                for round_ in range(rounds):
                    for activity in activities:
                        report: dict[str, Any] = {
                            "activityId": to_global_id("Activity", activity),
                            "chunk": chunk,
                        }
                        if round_ == 0:
                            report["status"] = "RUNNING"
                        response = await gql(REPORT, {"input": report}, agent)
                        assert response.json()["data"]["reportActivityProgress"]["userErrors"] == []
                received = 0
                for stream in fast:  # every event reached the fast readers
                    for _ in range(rounds + 1):
                        await stream.data()
                        received += 1
                assert received == expected
                reader._transport.resume_reading()  # type: ignore[attr-defined]

                async def until_terminal() -> bytes:
                    raw = b""
                    while b"TOO_SLOW" not in raw and (part := await reader.read(1 << 20)):
                        raw += part
                    return raw

                raw = await asyncio.wait_for(until_terminal(), 60)
            writer.close()
    assert b"TOO_SLOW" in raw


async def _members(app: Starlette, count: int) -> bool:
    groups = [g for by_key in app.state.hub.streams.values() for g in by_key.values()]
    return sum(len(g.members) for g in groups) == count


async def test_a_stopping_gateway_ends_streams_so_clients_resume_elsewhere(
    servers: Servers, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[0].slug
    async with gateway(servers) as (app, _), served(app) as ws_url:
        base = http_base(ws_url)
        async with (
            sse(base, token(slug), {"query": TENANT_EVENTS}) as events,
            multipart(base, token(slug), {"query": TENANT_EVENTS}) as parts,
        ):
            await wait_for(lambda: subscribed(app, slug, 2))
            live: LiveEndpoint = app.state.live
            await live.going_away()
            ending = await events.rest()
            terminal = await parts.next()
    assert ending[-1].data["errors"][0]["extensions"]["reason"] == "GOING_AWAY"
    assert terminal is not None and terminal["errors"][0]["extensions"]["reason"] == "GOING_AWAY"


# Several gateways


async def test_an_sse_subscriber_on_another_gateway_process_receives_the_events(
    tenants: tuple[Tenant, Tenant], gql: Any, token: Any, servers: Servers, tmp_path: Path
) -> None:
    slug = tenants[1].slug
    other = GatewayProcess(servers.database_url, servers.redis_url, tmp_path / "gateway.log")
    try:
        await other.ready()
        base = f"http://127.0.0.1:{other.port}"
        async with (
            sse(base, token(slug), {"query": TENANT_EVENTS}) as events,
            multipart(base, token(slug), {"query": TENANT_EVENTS}) as parts,
        ):
            names = [f"Elsewhere {n}" for n in range(3)]
            for name in names:  # through the session's gateway, heard on the other one
                await create_campaign(gql, token(slug), name)
            over_sse = [(await events.data())[1] for _ in names]
            assert names_of(over_sse) == names
            assert names_of([await parts.data() for _ in names]) == names
    finally:
        other.stop()


async def test_sse_single_connection_operations_resume_by_last_event_id(
    urls: tuple[str, str], app: Starlette, tenants: tuple[Tenant, Tenant], gql: Any, token: Any
) -> None:
    slug = tenants[1].slug
    auth = {"authorization": f"Bearer {token(slug)}"}
    async with httpx.AsyncClient(base_url=urls[1], timeout=15) as http:
        reservation = (await http.put("/graphql/stream", headers=auth)).text
        headers = {**auth, TOKEN_HEADER: reservation}
        async with sse(urls[1], token(slug), method="GET", headers=headers) as stream:

            async def start(operation: str, extra: dict[str, str]) -> None:
                answer = await http.post(
                    "/graphql/stream",
                    json={"query": TENANT_EVENTS, "extensions": {"operationId": operation}},
                    headers={**headers, **extra},
                )
                assert answer.status_code == 202, answer.text

            await start("a", {})
            await wait_for(lambda: subscribed(app, slug, 1))
            await create_campaign(gql, token(slug), "Seen")
            seen = await stream.next()
            assert seen is not None and seen.data["id"] == "a"
            await http.delete("/graphql/stream", params={"operationId": "a"}, headers=headers)
            completed = await stream.next()
            assert completed is not None and completed.event == "complete"
            await create_campaign(gql, token(slug), "Missed")  # while no operation runs
            await start("b", {"last-event-id": str(seen.id)})
            await create_campaign(gql, token(slug), "Live")
            got = [await stream.next() for _ in range(2)]
    assert [e.data["id"] for e in got if e] == ["b", "b"]
    names = [e.data["payload"]["data"]["tenantEvents"]["campaign"]["name"] for e in got if e]
    assert names == ["Missed", "Live"]
