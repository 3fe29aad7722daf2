"""SSE single connection mode across gateway processes (switchboard/live/reservations.py),
with real processes on the session's PostgreSQL and Redis:

- A reservation made and opened on process A runs operations POSTed on process B, in order
  and once, stops them on a DELETE sent to B, refuses a second stream from B, and is
  unknown to another tenant on both; a refused operation sent to B gets A's answer.
- An operation for a stream whose process died answers 404 at once, not after a timeout.
- While Redis is away, reservations answer 503 SERVICE_UNAVAILABLE; an open stream lives
  on, and everything works again once Redis is back, by itself.
- SIGTERM to `switchboard serve --workers 2` ends open SSE streams (both modes) with the
  GOING_AWAY terminal event; clients resume on another gateway with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from switchboard.settings import Settings
from tests.conftest import Servers
from tests.e2e.test_live import CREATE, create_campaign
from tests.support.edge import gateway
from tests.support.fault_proxy import FaultProxy, redis_upstream
from tests.support.jobs import Tenant, fresh_tenant, wait_for
from tests.support.live import TENANT_EVENTS, GatewayProcess, served
from tests.support.processes import Serve
from tests.support.streams import SSEEvent, http_base, sse

TOKEN_HEADER = "x-graphql-event-stream-token"
HEARTBEAT_S = 0.5  # claims are renewed every heartbeat and last three
CLAIM_TTL_S = 3 * HEARTBEAT_S
FORWARDS = re.compile(r'^switchboard_live_sse_forwards_total\{outcome="answered"\} (\S+)$', re.M)
OPEN = re.compile(r'^switchboard_subscriptions_open\{operation="TenantEvents"\} (\S+)$', re.M)


@pytest.fixture(scope="module")
async def tenants(servers: Servers) -> tuple[Tenant, Tenant]:
    return (
        await fresh_tenant(servers.database_url, "shared-a"),
        await fresh_tenant(servers.database_url, "shared-b"),
    )


@pytest.fixture(scope="module")
async def pair(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, str]]:
    """Two gateway processes on the same servers: (A's base URL, B's)."""
    logs = tmp_path_factory.mktemp("sse-pair")
    env = {"SWITCHBOARD_LIVE_HEARTBEAT_S": str(HEARTBEAT_S)}
    processes = [
        GatewayProcess(servers.database_url, servers.redis_url, logs / f"{n}.log", **env)
        for n in ("a", "b")
    ]
    try:
        await asyncio.gather(*(p.ready() for p in processes))
        yield tuple(f"http://127.0.0.1:{p.port}" for p in processes)  # type: ignore[misc]
    finally:
        for process in processes:
            process.stop()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def operation(operation_id: str, **more: Any) -> dict[str, Any]:
    return {"query": TENANT_EVENTS, "extensions": {"operationId": operation_id}, **more}


async def subscriptions_open(http: httpx.AsyncClient, base: str) -> float:
    """TenantEvents subscriptions open in the process at `base` (its own /metrics)."""
    found = OPEN.search((await http.get(f"{base}/metrics")).text)
    return float(found.group(1)) if found else 0.0


async def create_through(http: httpx.AsyncClient, base: str, token: str, name: str) -> None:
    """A campaign created through the gateway at `base`."""
    answer = await http.post(
        f"{base}/graphql",
        json={"query": CREATE, "variables": {"input": {"name": name}}},
        headers=bearer(token),
    )
    assert "errors" not in answer.json(), answer.text


def by_operation(events: list[SSEEvent | None]) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for event in events:
        assert event is not None and event.event == "next", event
        data = event.data["payload"]["data"]["tenantEvents"]
        assert event.id == data["id"]
        names.setdefault(event.data["id"], []).append(data["campaign"]["name"])
    return names


# Two gateway processes


async def test_operations_posted_on_another_process_run_on_the_streams_process(
    pair: tuple[str, str], tenants: tuple[Tenant, Tenant], token: Any
) -> None:
    a, b = pair
    slug, other = tenants[0].slug, tenants[1].slug
    auth = bearer(token(slug))
    async with httpx.AsyncClient(timeout=15) as http:
        reserved = await http.put(f"{a}/graphql/stream", headers=auth)
        assert reserved.status_code == 201
        headers = {**auth, TOKEN_HEADER: reserved.text}
        opened = time.monotonic()
        async with sse(a, token(slug), method="GET", headers=headers) as stream:
            # One stream per reservation, whichever process the second GET reaches.
            second = await http.get(
                f"{b}/graphql/stream", headers={**headers, "accept": "text/event-stream"}
            )
            assert second.status_code == 409, second.text
            # Another tenant's user knows nothing of it, on either process.
            stranger = {**bearer(token(other)), TOKEN_HEADER: reserved.text}
            for base in (a, b):
                url = f"{base}/graphql/stream"
                assert (await http.get(url, headers=stranger)).status_code == 404
                posted = await http.post(url, json=operation("x"), headers=stranger)
                assert posted.status_code == 404
                assert posted.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
                deleted = await http.delete(url, params={"operationId": "x"}, headers=stranger)
                assert deleted.status_code == 404

            # Operations sent to B run on A's stream; one sent to A runs there directly.
            for operation_id, base in (("b1", b), ("b2", b), ("a1", a)):
                started = await http.post(
                    f"{base}/graphql/stream", json=operation(operation_id), headers=headers
                )
                assert started.status_code == 202, started.text

            async def all_joined() -> bool:
                return await subscriptions_open(http, a) == 3

            await wait_for(all_joined)
            assert await subscriptions_open(http, b) == 0  # nothing of it runs on B
            names = [f"Shared {n}" for n in range(5)]
            for name in names:  # changes made through B
                await create_through(http, b, token(slug), name)
            got = by_operation([await stream.next() for _ in range(3 * len(names))])
            assert got == {"b1": names, "b2": names, "a1": names}  # in order, each once

            # A refusal sent to B is A's own answer to the operation.
            refusals = [
                (operation("p", query="subscription {"), auth, "GRAPHQL_PARSE_FAILED"),
                (
                    operation("m"),
                    bearer(token(slug, audience="mobile")),
                    "PERSISTED_QUERY_REQUIRED",
                ),
                (operation("l"), {**auth, "last-event-id": "yesterday"}, "BAD_USER_INPUT"),
            ]
            for payload, who, code in refusals:
                refused = await http.post(
                    f"{b}/graphql/stream",
                    json=payload,
                    headers={**who, TOKEN_HEADER: reserved.text},
                )
                assert refused.status_code == 400, refused.text
                assert refused.json()["errors"][0]["extensions"]["code"] == code
            running = await http.post(f"{b}/graphql/stream", json=operation("b2"), headers=headers)
            assert running.status_code == 409

            # A DELETE sent to B stops the operation on A's stream.
            stopped = await http.delete(
                f"{b}/graphql/stream", params={"operationId": "b1"}, headers=headers
            )
            assert stopped.status_code == 200
            completed = await stream.next()
            assert completed is not None
            assert (completed.event, completed.data) == ("complete", {"id": "b1"})
            await create_through(http, b, token(slug), "After the stop")
            got = by_operation([await stream.next() for _ in range(2)])
            assert got == {"b2": ["After the stop"], "a1": ["After the stop"]}
            forwarded = FORWARDS.search((await http.get(f"{b}/metrics")).text)
            assert forwarded is not None and float(forwarded.group(1)) == 7  # 2 + 3 + 1 + 1

            # The claim outlives its first lease: A renews it at the heartbeat. (Time passing
            # is what is tested here, not a wait for another party.)
            await asyncio.sleep(max(0.0, opened + 2 * CLAIM_TTL_S - time.monotonic()))
            second = await http.get(
                f"{b}/graphql/stream", headers={**headers, "accept": "text/event-stream"}
            )
            assert second.status_code == 409, second.text
            late = await http.post(f"{b}/graphql/stream", json=operation("b3"), headers=headers)
            assert late.status_code == 202, late.text

        # The stream ended: its reservation is gone everywhere.
        async def released() -> bool:
            answer = await http.post(f"{b}/graphql/stream", json=operation("c"), headers=headers)
            return answer.status_code == 404

        await wait_for(released)
        again = await http.get(
            f"{a}/graphql/stream", headers={**headers, "accept": "text/event-stream"}
        )
        assert again.status_code == 404
        await wait_for(lambda: _none_open(http, a))


async def _none_open(http: httpx.AsyncClient, base: str) -> bool:
    return await subscriptions_open(http, base) == 0


async def test_a_reservation_made_on_one_process_opens_on_another(
    pair: tuple[str, str], tenants: tuple[Tenant, Tenant], token: Any
) -> None:
    a, b = pair
    slug = tenants[1].slug
    auth = bearer(token(slug))
    async with httpx.AsyncClient(timeout=15) as http:
        reserved = await http.put(f"{b}/graphql/stream", headers=auth)
        headers = {**auth, TOKEN_HEADER: reserved.text}
        # Another user of the same tenant does not know it either.
        colleague = {**bearer(token(slug, "admin")), TOKEN_HEADER: reserved.text}
        refused = await http.get(f"{a}/graphql/stream", headers=colleague)
        assert refused.status_code == 404
        async with sse(a, token(slug), method="GET", headers=headers) as stream:
            started = await http.post(f"{b}/graphql/stream", json=operation("1"), headers=headers)
            assert started.status_code == 202, started.text
            await wait_for(lambda: _opened(http, a, 1))
            await create_through(http, a, token(slug), "Across")
            assert by_operation([await stream.next()]) == {"1": ["Across"]}


async def _opened(http: httpx.AsyncClient, base: str, count: int) -> bool:
    return await subscriptions_open(http, base) == count


async def test_an_operation_for_a_stream_whose_process_died_answers_not_found(
    pair: tuple[str, str],
    tenants: tuple[Tenant, Tenant],
    token: Any,
    servers: Servers,
    tmp_path: Path,
) -> None:
    _, b = pair
    slug = tenants[0].slug
    auth = bearer(token(slug))
    owner = GatewayProcess(servers.database_url, servers.redis_url, tmp_path / "owner.log")
    try:
        await owner.ready()
        base = f"http://127.0.0.1:{owner.port}"
        async with httpx.AsyncClient(timeout=15) as http:
            reserved = await http.put(f"{base}/graphql/stream", headers=auth)
            headers = {**auth, TOKEN_HEADER: reserved.text}
            with contextlib.suppress(httpx.HTTPError):
                async with sse(base, token(slug), method="GET", headers=headers):
                    started = await http.post(
                        f"{b}/graphql/stream", json=operation("1"), headers=headers
                    )
                    assert started.status_code == 202, started.text
                    owner.kill()  # no shutdown: its claim stays in Redis for a while
                    began = time.monotonic()
                    gone = await http.post(
                        f"{b}/graphql/stream", json=operation("2"), headers=headers
                    )
                    took = time.monotonic() - began
            assert gone.status_code == 404, gone.text
            assert (
                gone.json()["errors"][0]["message"] == "The stream of this reservation has ended."
            )
            assert took < 2.0, took  # nobody listened: no waiting for an answer
    finally:
        owner.kill()


# Redis away


async def test_reservations_answer_503_while_redis_is_away_and_recover(
    servers: Servers, tenants: tuple[Tenant, Tenant], token: Any, gql: Any
) -> None:
    slug = tenants[1].slug
    auth = bearer(token(slug))
    proxy = FaultProxy(redis_upstream(servers.redis_url))
    port = await proxy.start()
    redis_url = f"redis://127.0.0.1:{port}/0"
    try:
        async with (
            gateway(
                servers, redis_url=redis_url, live_heartbeat_s=HEARTBEAT_S, redis_retry_s=0.2
            ) as (app, _),
            served(app) as ws_url,
            httpx.AsyncClient(base_url=http_base(ws_url), timeout=15) as http,
        ):
            base = http_base(ws_url)
            reserved = await http.put("/graphql/stream", headers=auth)
            headers = {**auth, TOKEN_HEADER: reserved.text}
            async with sse(base, token(slug), method="GET", headers=headers) as stream:
                started = await http.post("/graphql/stream", json=operation("1"), headers=headers)
                assert started.status_code == 202
                await wait_for(lambda: _joined(app, 1))
                await proxy.cut()
                cut = time.monotonic()
                for attempt in (
                    http.put("/graphql/stream", headers=auth),
                    http.get(
                        "/graphql/stream",
                        headers={**auth, TOKEN_HEADER: "another", "accept": "text/event-stream"},
                    ),
                ):
                    answer = await attempt
                    assert answer.status_code == 503, answer.text
                    assert answer.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
                    assert answer.headers["retry-after"] == "1"
                # Away longer than a claim lasts: Redis may have dropped it meanwhile. (Time
                # passing is what is tested, not a wait for another party.)
                await asyncio.sleep(max(0.0, cut + 2 * CLAIM_TTL_S - time.monotonic()))
                await proxy.restore()

                async def reserves() -> bool:
                    return (await http.put("/graphql/stream", headers=auth)).status_code == 201

                await wait_for(reserves)

                async def claim_held() -> bool:  # the open stream's claim is written again
                    answer = await http.get(
                        "/graphql/stream", headers={**headers, "accept": "text/event-stream"}
                    )
                    return answer.status_code == 409

                await wait_for(claim_held)
                await create_campaign(gql, token(slug), "After the outage")
                assert by_operation([await stream.next()]) == {"1": ["After the outage"]}
    finally:
        await proxy.close()


async def _joined(app: Starlette, members: int) -> bool:
    groups = [g for by_key in app.state.hub.streams.values() for g in by_key.values()]
    return sum(len(g.members) for g in groups) == members


# Serve stopping


async def test_sigterm_ends_sse_streams_with_going_away_and_clients_resume_elsewhere(
    servers: Servers,
    tenants: tuple[Tenant, Tenant],
    token: Any,
    gql: Any,
    pair: tuple[str, str],
    tmp_path: Path,
    settings: Settings,
) -> None:
    slug = tenants[0].slug
    auth = bearer(token(slug))
    serve = Serve(
        tmp_path / "state",
        tmp_path / "serve.log",
        "--workers",
        "2",
        "--job-workers",
        "0",
        DATABASE_URL=servers.database_url,
        REDIS_URL=servers.redis_url,
        SWITCHBOARD_MODE="test",
        SWITCHBOARD_JWT_SECRET=settings.jwt_secret,
    )
    try:
        await serve.ready(gateways=2, job_workers=0)
        async with contextlib.AsyncExitStack() as streams:
            distinct = await streams.enter_async_context(
                sse(serve.url, token(slug), {"query": TENANT_EVENTS})
            )
            # Single connection mode under serve: each request on a connection of its own,
            # so the kernel spreads them over both gateway processes.
            async with httpx.AsyncClient(timeout=15) as http:
                reserved = await http.put(f"{serve.url}/graphql/stream", headers=auth)
            headers = {**auth, TOKEN_HEADER: reserved.text}
            single = await streams.enter_async_context(
                sse(serve.url, token(slug), method="GET", headers=headers)
            )
            operations = [str(n) for n in range(6)]
            for operation_id in operations:
                async with httpx.AsyncClient(timeout=15) as http:
                    started = await http.post(
                        f"{serve.url}/graphql/stream", json=operation(operation_id), headers=headers
                    )
                assert started.status_code == 202, started.text
            await create_campaign(gql, token(slug), "Before the stop")
            last_id, _ = await distinct.data()
            seen = by_operation([await single.next() for _ in operations])
            assert seen == {n: ["Before the stop"] for n in operations}

            serve.process.send_signal(signal.SIGTERM)
            ending = await distinct.rest()
            single_ending = await single.rest()
        assert [e.event for e in ending] == ["next"]  # no `complete`: the client reconnects
        assert ending[0].data["errors"][0]["extensions"] == {
            "code": "STREAM_CLOSED",
            "reason": "GOING_AWAY",
        }
        assert sorted(e.data["id"] for e in single_ending) == operations
        assert all(
            e.data["payload"]["errors"][0]["extensions"]["reason"] == "GOING_AWAY"
            for e in single_ending
        )
        assert serve.process.wait(30) == 0

        # Resume on another gateway from the last event seen.
        await create_campaign(gql, token(slug), "While away")
        resume = {"last-event-id": str(last_id)}
        async with sse(pair[0], token(slug), {"query": TENANT_EVENTS}, headers=resume) as again:
            _, data = await again.data()
        assert data["tenantEvents"]["campaign"]["name"] == "While away"
    finally:
        serve.stop()
