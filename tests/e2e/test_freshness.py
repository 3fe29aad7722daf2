"""Freshness whoever writes: a change made by a job worker process (not a request to the
gateway) reaches the cached mobileHome within the contract's one second."""

from __future__ import annotations

import functools
import time
import uuid

import asyncpg
import httpx
from redis.asyncio import Redis

from switchboard.edge.auth import issue_token
from switchboard.settings import Settings
from tests.conftest import Servers, tenant_gid, user_gid
from tests.support.edge import MOBILE_HOME_ID, bearer, gateway, persisted, server_timing
from tests.support.jobs import Worker, enqueue, fresh_tenant, new_work, wait_for

HOME = {"extensions": persisted(MOBILE_HOME_ID)}
CHANGES = 3


def _pending(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return response.json()["data"]["mobileHome"]["pendingApprovalCount"]


async def _awaiting_approval(db_conn: asyncpg.Connection, activity: uuid.UUID) -> bool:
    status = await db_conn.fetchval("SELECT status FROM activities WHERE id = $1", activity)
    return status == "AWAITING_APPROVAL"


async def _home_is_current(
    client: httpx.AsyncClient, auth: dict[str, str], db_conn: asyncpg.Connection, tenant: uuid.UUID
) -> bool:
    """Whether the (cached) count equals the database's, which the worker's commit raised."""
    shown = _pending(await client.post("/graphql", json=HOME, headers=auth))
    truth = await db_conn.fetchval(
        "SELECT count(*) FROM approvals WHERE tenant_id = $1 AND status = 'PENDING'", tenant
    )
    return shown == truth


async def _served_from_cache(client: httpx.AsyncClient, auth: dict[str, str]) -> bool:
    """Whether a request right after another is served from the cache. The previous change's
    run commits more than the count this test watches (its turns, its spend), and their
    invalidations may still be arriving: the next pair of requests then is a hit."""
    await client.post("/graphql", json=HOME, headers=auth)
    again = await client.post("/graphql", json=HOME, headers=auth)
    return server_timing(again)["cache"] == "hit"


async def test_cached_mobile_home_follows_a_workers_change(
    servers: Servers, settings: Settings, db_conn: asyncpg.Connection
) -> None:
    tenant = await fresh_tenant(servers.database_url, "fresh")
    mobile = bearer(
        issue_token(
            settings,
            user_gid(tenant.slug, "marketer"),
            tenant_gid(tenant.slug),
            "mobile",
        )
    )
    redis = Redis.from_url(servers.redis_url)
    worker = Worker(servers.database_url, servers.redis_url, [tenant])
    lags = []
    try:
        await worker.ready()
        async with gateway(servers, response_cache=True) as (_, client):
            for _ in range(CHANGES):
                cached = functools.partial(_served_from_cache, client, mobile)
                await wait_for(cached, timeout=5, interval=0.05)
                (activity,) = await new_work(db_conn, tenant, "COPYWRITER")
                await enqueue(redis, tenant, "COPYWRITER", activity, 5)

                # The worker's commit is seen here first; from then the cache has 1 s.
                awaiting = functools.partial(_awaiting_approval, db_conn, activity)
                await wait_for(awaiting, timeout=30, interval=0.005)
                committed = time.monotonic()
                current = functools.partial(_home_is_current, client, mobile, db_conn, tenant.id)
                await wait_for(current, timeout=5, interval=0.01)
                lags.append(time.monotonic() - committed)
    finally:
        worker.stop()
        await redis.aclose()
    assert max(lags) < 1.0, lags
