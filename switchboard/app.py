"""The ASGI application: routes, and the resources one gateway process holds for its lifetime."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from schema.schema import schema
from switchboard.audit import AuditLog
from switchboard.auth import Authenticator
from switchboard.context import Services
from switchboard.db import Database, create_engine
from switchboard.graphql_http import GraphQLEndpoint
from switchboard.settings import Settings

REDIS_TIMEOUT_S = 0.5


def create_redis(url: str) -> Redis:
    # Short timeouts: a slow or absent Redis must never hold a request for long.
    return Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )


def create_app(settings: Settings | None = None) -> Starlette:
    """The gateway. DATABASE_URL and REDIS_URL (or the settings' URLs) must point at servers."""
    settings = settings or Settings.from_env()
    database_url = settings.database_url or os.environ["DATABASE_URL"]
    redis_url = settings.redis_url or os.environ["REDIS_URL"]
    db = Database(create_engine(settings, database_url))
    redis = create_redis(redis_url)
    services = Services(db=db, redis=redis, audit=AuditLog(db))
    endpoint = GraphQLEndpoint(settings, services, Authenticator(settings, db, redis), schema)

    async def graphql(request: Request) -> Response:
        return await endpoint(request)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Long-lived start-up objects leave the collector's view; higher thresholds make the
        # many short-lived objects of a response cheaper (see performance-facts.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 1000)
        services.audit.start()
        yield
        await services.audit.stop()  # a normal shutdown writes every queued audit entry
        await redis.aclose()
        await db.dispose()

    app = Starlette(
        routes=[
            # Every method reaches the endpoint, which answers 405 in the contract's format.
            Route("/graphql", graphql, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.db = db
    app.state.redis = redis
    app.state.settings = settings
    return app
