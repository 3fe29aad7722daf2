"""The ASGI application: the endpoints and routes of one gateway process, made from the
services the composition root (bootstrap.py) wires, and their lifespan."""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from schema.schema import schema
from switchboard import graphiql
from switchboard.bootstrap import build_services
from switchboard.edge import health
from switchboard.edge.compression import CompressionMiddleware
from switchboard.edge.http import GraphQLEndpoint
from switchboard.graphiql import page as graphiql_page
from switchboard.infra.redis import redis_client
from switchboard.live.multipart import MultipartEndpoint, wants_multipart
from switchboard.live.sse import SSEEndpoint
from switchboard.live.subscribe import LiveSubscriptions
from switchboard.live.websocket import LiveEndpoint
from switchboard.observability import logs, metrics, operations, tracing
from switchboard.observability.middleware import ObservabilityMiddleware
from switchboard.settings import Settings
from tasks.config import JobSettings


def create_app(settings: Settings | None = None, jobs: JobSettings | None = None) -> Starlette:
    """The gateway. The settings must name servers (DATABASE_URL; REDIS_URL or Sentinels);
    `jobs` names the job queue (its prefix) the gateway enqueues on."""
    settings = settings or Settings.from_env()
    database_url, redis_url = settings.server_urls()
    # Observability: JSON logs with secrets redacted (a test run's logging is its runner's),
    # and tracing from the OTEL_* variables.
    logs.register_secret(settings.jwt_secret)
    logs.register_url_password(database_url)
    logs.register_url_password(redis_url)
    logs.register_secret(settings.redis_password)
    for replica_url in settings.database_replica_urls:  # read replicas (infra/replicas.py)
        logs.register_url_password(replica_url)
    if settings.mode != "test":
        logs.configure_logging(settings.log_level, settings.log_format)
    tracing.configure_from_env(
        trace_resolvers=settings.trace_resolvers, otlp_inline=settings.otlp_inline
    )
    # Everything this process holds for its lifetime, wired in one place (bootstrap.py).
    services = build_services(settings, jobs or JobSettings(), schema=schema)
    db, redis = services.db, services.redis
    endpoint = GraphQLEndpoint(
        services, graphiql=functools.partial(graphiql_page.render, settings, db)
    )

    async def graphql(request: Request) -> Response:
        if wants_multipart(request):  # Apollo's multipart subscriptions (switchboard/live/)
            return await multipart(request)
        return await operations.observe(endpoint, request)  # span, duration, errors by code

    # The websocket endpoint, SSE and multipart: one live path for every transport, the
    # same admission and hub groups (subscribe.py).
    subscriptions = LiveSubscriptions(endpoint, services.hub)
    live = LiveEndpoint(services, subscriptions)
    # SSE reservations are shared through Redis; their channel listener has a connection
    # of its own (a subscribed connection blocks).
    sse = SSEEndpoint(subscriptions, redis_client(settings, socket_connect_timeout=2))
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
        services.start()  # the audit writer, the skill index's build, the hub, the relay
        yield
        await services.close(after_live=[sse.reservations.stop])
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
    app.state.relay = services.relay
    app.state.hub = services.hub
    app.state.live = live  # a stopping server closes its websockets (gateway_process.py)
    return app
