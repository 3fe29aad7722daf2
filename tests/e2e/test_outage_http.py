"""Outages under a running gateway. PostgreSQL: 503 SERVICE_UNAVAILABLE with Retry-After
while it cannot be reached, nothing half-applied, and service again once it is back. Redis:
every read still answered, a dispatch's job (refused meanwhile) enqueued by the gateway
itself once Redis answers, and the cache and the rate limiter in use again."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
from redis.asyncio import Redis

from domain.ids import parse_id_of, to_global_id
from tasks.broker import JobStore
from tests.conftest import Servers
from tests.support.edge import MOBILE_HOME_ID, bearer, codes, gateway, persisted, server_timing
from tests.support.fault_proxy import FaultProxy, postgres_upstream, redis_upstream, through_proxy

READ = "{ tenant { name campaigns(first: 3) { edges { node { id name } } } } }"
DISPATCH = (
    "mutation($input: DispatchActivityInput!) { dispatchActivity(input: $input) "
    "{ activity { id status } userErrors { code } } }"
)
CREATE = (
    "mutation($input: CreateCampaignInput!) { createCampaign(input: $input) "
    "{ campaign { id } userErrors { code } } }"
)


async def _until(condition: Any, deadline_s: float = 10.0) -> float:
    """Poll the async `condition` until it holds; returns how long that took."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < deadline_s, "condition not met in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_database_outage_answers_503_changes_nothing_and_recovers(
    servers: Servers, token: Any, db_conn: asyncpg.Connection
) -> None:
    proxy = FaultProxy(postgres_upstream(servers.database_url))
    port = await proxy.start()
    database_url = through_proxy(servers.database_url, port)
    name = f"Outage {uuid.uuid4().hex[:8]}"
    try:
        async with gateway(servers, database_url=database_url, readiness_cache_s=5) as (_, client):
            auth = bearer(token("acme"))
            assert (await client.post("/graphql", json={"query": READ}, headers=auth)).is_success
            assert (await client.get("/readyz")).status_code == 200

            await proxy.cut()
            read = await client.post("/graphql", json={"query": READ}, headers=auth)
            assert read.status_code == 503 and codes(read) == ["SERVICE_UNAVAILABLE"]
            assert read.headers["retry-after"].isdigit()
            assert "data" not in read.json()
            assert not any(leak in read.text for leak in ("Traceback", "asyncpg", "sqlalchemy"))
            write = await client.post(
                "/graphql",
                json={"query": CREATE, "variables": {"input": {"name": name}}},
                headers=auth,
            )
            assert write.status_code == 503 and codes(write) == ["SERVICE_UNAVAILABLE"]
            # A token seen for the first time needs the database too: still 503, not 401/500.
            viewer = bearer(token("acme", "viewer"))
            first = await client.post("/graphql", json={"query": READ}, headers=viewer)
            assert first.status_code == 503 and codes(first) == ["SERVICE_UNAVAILABLE"]

            async def not_ready() -> bool:
                return (await client.get("/readyz")).status_code == 503

            await _until(not_ready)  # the ready answer of before the outage ages out

            await proxy.restore()

            async def serving() -> bool:
                response = await client.post("/graphql", json={"query": READ}, headers=auth)
                return response.status_code == 200 and "errors" not in response.json()

            assert await _until(serving) < 2.0

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            assert await _until(ready) < 2.0
        count = "SELECT count(*) FROM campaigns WHERE name = $1"
        assert await db_conn.fetchval(count, name) == 0  # the refused write left nothing
    finally:
        await proxy.close()


async def test_a_redis_outage_answers_every_read_and_the_edge_recovers(
    servers: Servers, token: Any, db_conn: asyncpg.Connection
) -> None:
    proxy = FaultProxy(redis_upstream(servers.redis_url))
    port = await proxy.start()
    redis_url = f"redis://127.0.0.1:{port}/0"
    home = {"extensions": persisted(MOBILE_HOME_ID)}
    mobile = bearer(token("acme", "marketer", "mobile"))
    dashboard = bearer(token("acme"))
    try:
        async with gateway(servers, redis_url=redis_url, response_cache=True, rate_limit=True) as (
            _,
            client,
        ):
            await client.post("/graphql", json=home, headers=mobile)
            cached = await client.post("/graphql", json=home, headers=mobile)
            assert server_timing(cached)["cache"] == "hit"

            await proxy.cut()
            for _ in range(10):  # reads go around the cache and the shared window
                read = await client.post("/graphql", json={"query": READ}, headers=dashboard)
                assert read.status_code == 200 and "errors" not in read.json(), read.text
                answer = await client.post("/graphql", json=home, headers=mobile)
                assert answer.status_code == 200 and "errors" not in answer.json()
                assert answer.json()["data"] == cached.json()["data"]

            # A dispatch commits its activity: that is its answer, though the job cannot be
            # enqueued now (the gateway enqueues it once Redis answers again).
            deliverable = await db_conn.fetchval(
                "SELECT d.id FROM deliverables d JOIN tenants t ON t.id = d.tenant_id "
                "JOIN campaigns c ON c.id = d.campaign_id WHERE t.slug = 'acme' "
                "AND c.status = 'ACTIVE' AND d.status IN ('PLANNED', 'IN_PROGRESS') LIMIT 1"
            )
            variables = {
                "input": {
                    "deliverableId": to_global_id("Deliverable", deliverable),
                    "role": "COPYWRITER",
                }
            }
            dispatched = await client.post(
                "/graphql", json={"query": DISPATCH, "variables": variables}, headers=dashboard
            )
            assert dispatched.status_code == 200, dispatched.text
            activity = dispatched.json()["data"]["dispatchActivity"]["activity"]
            assert activity is not None, dispatched.text
            assert activity["status"] == "QUEUED"
            activity_id = parse_id_of("Activity", activity["id"])
            status = "SELECT status FROM activities WHERE id = $1"
            assert await db_conn.fetchval(status, activity_id) == "QUEUED"

            await proxy.restore()

            # Its job is in the queue soon after, put there by the gateway: no worker runs
            # here, and none reconciles.
            redis = Redis.from_url(servers.redis_url)
            try:

                async def job_enqueued() -> bool:
                    return bool(await JobStore().existing(redis, [activity_id.hex]))

                await _until(job_enqueued, deadline_s=30)
            finally:
                await redis.aclose()

            async def cached_again() -> bool:
                response = await client.post("/graphql", json=home, headers=mobile)
                assert response.status_code == 200
                return server_timing(response).get("cache") == "hit"

            # The breaker lets Redis back in after its cool-down (SWITCHBOARD_REDIS_RETRY_S).
            await _until(cached_again)
    finally:
        await proxy.close()
