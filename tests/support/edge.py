"""Helpers of the edge tests (tests/test_edge_*.py): gateways of their own settings, the
mobile manifest, clearing the edge's Redis keys between tests, and reading error codes
and rate-limit answers."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from starlette.applications import Starlette

from switchboard.app import create_app
from switchboard.edge.auth import issue_token
from switchboard.settings import DEFAULT_MANIFEST, Settings
from tests.conftest import Servers, tenant_gid, user_gid

# Production mode accepts HS256 tokens only when signed with a secret of the operator's own.
PRODUCTION_SECRET = "edge-tests-production-secret-0123456789abcdef"
MANIFEST = {op["name"]: op for op in orjson.loads(DEFAULT_MANIFEST.read_bytes())["operations"]}
MOBILE_HOME_ID = MANIFEST["MobileHome"]["id"]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(sha: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha}}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def production_token(slug: str, local: str = "marketer", audience: str = "dashboard") -> str:
    """A token for gateways in production mode (signed with PRODUCTION_SECRET)."""
    settings = Settings(jwt_secret=PRODUCTION_SECRET)
    return issue_token(settings, user_gid(slug, local), tenant_gid(slug), audience)


@contextlib.asynccontextmanager
async def gateway(
    servers: Servers, client_ip: str = "127.0.0.1", **overrides: Any
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """A gateway with `Settings` overrides (test mode unless `mode` is given), in-process."""
    values: dict[str, Any] = {
        "database_url": servers.database_url,
        "redis_url": servers.redis_url,
        "db_pooler": servers.pooler,
        "mode": "test",
    }
    values.update(overrides)
    if values["mode"] == "production":
        values.setdefault("jwt_secret", PRODUCTION_SECRET)
    async with running(Settings(**values), (client_ip, 40_000)) as (application, client):
        yield application, client


@contextlib.asynccontextmanager
async def running(
    settings: Settings, client: tuple[str, int] = ("127.0.0.1", 123)
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """A gateway of these settings, in-process through its real lifespan, and an HTTP client
    of it that connects from `client` (httpx's default address unless given)."""
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield application, http


async def clear_edge_keys(redis_url: str, *patterns: str) -> None:
    """Delete the keys of the edge (rate-limit windows, cache entries, APQ registrations)."""
    redis = Redis.from_url(redis_url)
    try:
        for pattern in patterns or ("rl:*", "rc:*", "apq:*"):
            keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
            if keys:
                await redis.delete(*keys)
    finally:
        await redis.aclose()


def codes(response: httpx.Response) -> list[str]:
    """The `extensions.code` of each of the response's errors."""
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


def limited(response: httpx.Response, window_s: float) -> int:
    """Assert a 429 RATE_LIMITED with a Retry-After inside the window; returns Retry-After."""
    assert response.status_code == 429, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= max(1, int(window_s)), retry_after
    return retry_after


def server_timing(response: httpx.Response) -> dict[str, str]:
    """The Server-Timing header as {metric: dur or desc}."""
    metrics = {}
    for part in response.headers.get("server-timing", "").split(","):
        name, _, rest = part.strip().partition(";")
        if name:
            metrics[name] = rest.partition("=")[2].strip('"')
    return metrics
