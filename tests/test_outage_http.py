"""A database outage under a running gateway: 503 SERVICE_UNAVAILABLE with Retry-After while
PostgreSQL cannot be reached, nothing half-applied, and service again once it is back."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg

from tests.conftest import Servers
from tests.edge_support import bearer, gateway
from tests.fault_proxy import FaultProxy, postgres_upstream, through_proxy

READ = "{ tenant { name campaigns(first: 3) { edges { node { id name } } } } }"
CREATE = (
    "mutation($input: CreateCampaignInput!) { createCampaign(input: $input) "
    "{ campaign { id } userErrors { code } } }"
)


def _codes(response: Any) -> list[str]:
    return [e["extensions"]["code"] for e in response.json().get("errors", [])]


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
            assert read.status_code == 503 and _codes(read) == ["SERVICE_UNAVAILABLE"]
            assert read.headers["retry-after"].isdigit()
            assert "data" not in read.json()
            assert not any(leak in read.text for leak in ("Traceback", "asyncpg", "sqlalchemy"))
            write = await client.post(
                "/graphql",
                json={"query": CREATE, "variables": {"input": {"name": name}}},
                headers=auth,
            )
            assert write.status_code == 503 and _codes(write) == ["SERVICE_UNAVAILABLE"]
            # A token seen for the first time needs the database too: still 503, not 401/500.
            viewer = bearer(token("acme", "viewer"))
            first = await client.post("/graphql", json={"query": READ}, headers=viewer)
            assert first.status_code == 503 and _codes(first) == ["SERVICE_UNAVAILABLE"]

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
