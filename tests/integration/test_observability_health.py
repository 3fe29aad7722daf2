"""Health: /healthz for liveness; /readyz checks the database, Redis and the migrations,
fails when one of them is not there, and caches its answer."""

from __future__ import annotations

import socket

import httpx

from switchboard.bootstrap import create_redis
from switchboard.edge.health import Readiness
from switchboard.infra.db import Database, create_engine
from switchboard.settings import Settings
from tests.conftest import Servers, _database_url
from tests.support.edge import running


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once it is closed


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.text == "ok"


async def test_readyz_is_ready_with_every_check_passing_and_caches_its_answer(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/readyz")
    assert first.status_code == 200, first.text
    report = first.json()
    assert report["status"] == "ready"
    assert {name: check["ok"] for name, check in report["checks"].items()} == {
        "database": True,
        "redis": True,
        "migrations": True,
    }
    second = await client.get("/readyz")
    assert second.json()["checked_at"] == report["checked_at"]  # the cached answer
    assert second.headers["cache-control"] == "no-store"


async def test_readyz_fails_when_the_database_is_unreachable(servers: Servers) -> None:
    unreachable = f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/switchboard"
    settings = Settings(
        database_url=unreachable,
        redis_url=servers.redis_url,
        mode="test",
        db_connect_timeout_s=1.0,
    )
    async with running(settings) as (_, http):
        assert (await http.get("/healthz")).status_code == 200  # alive, just not ready
        first = await http.get("/readyz")
        assert first.status_code == 503
        report = first.json()
        assert report["status"] == "not ready"
        checks = report["checks"]
        assert checks["redis"]["ok"] is True
        assert checks["database"]["ok"] is False and checks["migrations"]["ok"] is False
        assert "127.0.0.1" not in first.text and "postgres@" not in first.text
        again = await http.get("/readyz")
        assert again.status_code == 503 and again.json()["checked_at"] == report["checked_at"]


async def test_readyz_fails_when_migrations_are_not_at_head(servers: Servers) -> None:
    # The server's `postgres` database answers but was never migrated.
    settings = Settings(
        database_url=_database_url(servers.database_url, "postgres"),
        redis_url=servers.redis_url,
        mode="test",
    )
    async with running(settings) as (_, http):
        response = await http.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is True and checks["redis"]["ok"] is True
    assert checks["migrations"]["ok"] is False


async def test_the_readiness_answer_is_checked_again_only_after_its_ttl(
    servers: Servers,
) -> None:
    now = [1000.0]
    db = Database(create_engine(Settings(), servers.database_url))
    redis = create_redis(Settings(redis_url=servers.redis_url))
    readiness = Readiness(db, redis, servers.database_url, ttl_s=10.0, clock=lambda: now[0])
    try:
        first = await readiness.report()
        assert first["status"] == "ready" and readiness.checks_run == 1
        now[0] += 9.9
        assert await readiness.report() is first and readiness.checks_run == 1
        now[0] += 0.1
        second = await readiness.report()
        assert second is not first and second["status"] == "ready"
        assert readiness.checks_run == 2
    finally:
        await redis.aclose()
        await db.dispose()
