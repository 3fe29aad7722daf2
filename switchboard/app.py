"""The ASGI application: routes, and the resources one gateway process holds for its lifetime."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from redis.asyncio import BlockingConnectionPool, Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from schema.schema import schema
from switchboard import graphiql
from switchboard.audit import AuditLog
from switchboard.auth import Authenticator
from switchboard.context import Services
from switchboard.db import Database, create_engine, libpq_url
from switchboard.edge.compression import CompressionMiddleware
from switchboard.graphql_http import GraphQLEndpoint, result_payload
from switchboard.live.hub import Hub
from switchboard.live.multipart import MultipartEndpoint, wants_multipart
from switchboard.live.relay import Relay
from switchboard.live.sse import SSEEndpoint
from switchboard.live.subscribe import LiveSubscriptions
from switchboard.live.websocket import LiveEndpoint
from switchboard.observability import health, logs, metrics, operations, tracing
from switchboard.observability.middleware import ObservabilityMiddleware
from switchboard.observability.redis import TracedRedis
from switchboard.settings import Settings
from switchboard.skill_search import SkillSearch

REDIS_TIMEOUT_S = 0.5
REDIS_MAX_CONNECTIONS = 100


def create_redis(url: str) -> Redis:
    # Short timeouts: a slow or absent Redis must never hold a request for long.
    # A blocking pool: a burst (a thousand dashboards reconnecting their subscriptions)
    # waits up to the timeout for a connection instead of failing past the pool's size.
    # TracedRedis: a span per command when the request's trace records (observability).
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
    return TracedRedis.from_pool(pool)


def create_app(settings: Settings | None = None) -> Starlette:
    """The gateway. The settings' URLs (DATABASE_URL, REDIS_URL) must point at servers."""
    settings = settings or Settings.from_env()
    database_url, redis_url = settings.server_urls()
    # Observability: JSON logs with secrets redacted (a test run's logging is its runner's),
    # and tracing from the OTEL_* variables.
    logs.register_secret(settings.jwt_secret)
    logs.register_url_password(database_url)
    logs.register_url_password(redis_url)
    if settings.mode != "test":
        logs.configure_logging(settings.log_level, settings.log_format)
    tracing.configure_from_env(
        trace_resolvers=settings.trace_resolvers, otlp_inline=settings.otlp_inline
    )
    db = Database(create_engine(settings, database_url))
    redis = create_redis(redis_url)
    # Skill search: this process's copy of the skill index (switchboard/skill_search/).
    skill_search = SkillSearch.from_settings(settings, db, redis)
    services = Services(db=db, redis=redis, audit=AuditLog(db), skills=skill_search)
    endpoint = GraphQLEndpoint(settings, services, Authenticator(settings, db, redis), schema)

    async def graphql(request: Request) -> Response:
        if wants_multipart(request):  # Apollo's multipart subscriptions (switchboard/live/)
            return await multipart(request)
        return await operations.observe(endpoint, request)  # span, duration, errors by code

    # Live events: this process's relay of the outbox, its hub, and the websocket endpoint.
    relay = Relay(db, redis, libpq_url(database_url), poll_s=settings.live_relay_poll_s)
    hub = Hub(
        services,
        redis_url,
        lambda result: result_payload(result, settings)[1],
        planned=settings.executor == "planned",
    )
    # One live path for every transport: the same admission and hub groups (subscribe.py).
    subscriptions = LiveSubscriptions(endpoint, hub)
    live = LiveEndpoint(endpoint, hub, subscriptions)
    sse = SSEEndpoint(subscriptions)
    multipart = MultipartEndpoint(subscriptions)
    live.streams += [sse, multipart]  # a stopping server ends them with the websockets

    readiness = health.Readiness(db, redis, database_url, ttl_s=settings.readiness_cache_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Long-lived start-up objects leave the collector's view; higher thresholds make the
        # many short-lived objects of a response cheaper (see performance-facts.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 1000)
        services.audit.start()
        skill_search.start()  # builds from PostgreSQL in the background
        hub.start()
        if settings.live_relay:
            relay.start()
        yield
        await relay.stop()
        await hub.stop()
        await services.audit.stop()  # a normal shutdown writes every queued audit entry
        await skill_search.close()
        await redis.aclose()
        await db.dispose()
        tracing.flush()
        metrics.process_exiting()

    app = Starlette(
        routes=[
            # Every method reaches the endpoint, which answers 405 in the contract's format.
            Route("/graphql", graphql, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            WebSocketRoute("/graphql", live),  # subscriptions (switchboard/live/)
            Route("/graphql/stream", sse, methods=["GET", "POST", "PUT", "DELETE"]),  # SSE
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", readiness.endpoint, methods=["GET"]),
            Route("/metrics", metrics.metrics_endpoint, methods=["GET"]),
            *graphiql.routes(settings),  # GraphiQL's assets, development mode only
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(ObservabilityMiddleware),  # outermost: spans and HTTP metrics
            # gzip/brotli for bodies over compression_min_bytes; never websockets or streams.
            Middleware(CompressionMiddleware, minimum_size=settings.compression_min_bytes),
        ],
    )
    app.state.services = services
    app.state.db = db
    app.state.redis = redis
    app.state.settings = settings
    app.state.graphql = endpoint  # its documents, rate limiter and response cache
    app.state.relay = relay
    app.state.hub = hub
    app.state.live = live  # a stopping server closes its websockets (gateway_process.py)
    return app
