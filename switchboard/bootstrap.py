"""The composition root: where a process's long-lived parts are built from its settings,
wired together, started and closed, for the gateway and the job worker alike.

`build_services(settings, jobs)` gives what every process holds, `Infrastructure`: the
settings, the database pool, Redis and the job queue (the process's broker, connected).
`build_services(settings, jobs, schema=…)` gives a gateway process's `Services`: that,
plus what GraphQL is served with: the authenticator and its Redis caches, the edge's
admission (document cache, persisted queries, operation limits, rate limiter), the response
cache, the execution plans, the audit log, skill search, the live hub and the outbox relay
(each of those two opens its own Redis or PostgreSQL connection for its blocking reads).

- The app (app.py) makes its endpoints and routes from `Services`; the HTTP endpoint
  (edge/http.py) and the websocket endpoint (live/websocket.py) take their parts from
  it and build nothing of their own.
- The job worker (tasks/worker.py) takes the database, Redis and the queue. It never loads
  the GraphQL stack: the gateway's parts are imported here only when a schema is given.

A gateway's `services.start()` starts the background parts; `await services.close()` stops
them and closes the pools, in the reverse order.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from switchboard.infra.commit_signal import CommitSignal
from switchboard.infra.db import Database, create_engine
from switchboard.infra.redis import redis_client, replica_acks
from switchboard.observability.redis import TracedRedis
from switchboard.settings import Settings
from tasks.broker import broker
from tasks.config import JobSettings

if TYPE_CHECKING:
    from switchboard.edge.admission import Admission
    from switchboard.edge.auth import Authenticator
    from switchboard.execution.executor import OperationExecutor
    from switchboard.execution.response_cache import ResponseCache
    from switchboard.infra.audit import AuditLog
    from switchboard.live.hub import Hub
    from switchboard.live.relay import Relay
    from switchboard.skill_search import SkillSearch
    from tasks.queue import LateEnqueues

REDIS_TIMEOUT_S = 0.5
REDIS_MAX_CONNECTIONS = 100


def create_redis(settings: Settings) -> Redis:
    """The gateway's Redis client (REDIS_URL's server, or the Sentinels' primary)."""
    # Short timeouts: a slow or absent Redis must never hold a request for long.
    # A blocking pool: a burst (a thousand dashboards reconnecting their subscriptions)
    # waits up to the timeout for a connection instead of failing past the pool's size.
    # TracedRedis: a span per command when the request's trace records (observability).
    return redis_client(
        settings,
        redis_class=TracedRedis,
        blocking=True,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )


def create_worker_redis(settings: Settings, jobs: JobSettings) -> Redis:
    """A job worker's Redis client: its claims block up to `poll_s`."""
    return redis_client(
        settings,
        socket_timeout=jobs.poll_s + 10,
        socket_connect_timeout=5,
        health_check_interval=30,
        # One immediate retry (a pooled connection the server closed since); longer outages
        # are waited out in tasks/outage.py, not inside the client.
        retry=Retry(NoBackoff(), 1),
    )


@dataclass(eq=False)
class Infrastructure:
    """What every process holds: its settings, the database pool, Redis, the job queue."""

    settings: Settings
    jobs: JobSettings
    database_url: str
    redis_url: str | None  # None: the Sentinels name the primary
    db: Database
    redis: Redis

    async def close(self) -> None:
        await self.redis.aclose()
        await self.db.dispose()


@dataclass(eq=False)
class Services(Infrastructure):
    """What a gateway process holds for every request, websocket and stream. An operation
    reaches it as `info.context.services` (resolvers/context.py)."""

    schema: Any = None  # the Strawberry schema
    # Set by build_services once `Services` exists (the hub and the edge hold it in turn).
    audit: AuditLog = field(init=False)
    skills: SkillSearch = field(init=False)  # this process's skill index (skill_search/)
    authenticator: Authenticator = field(init=False)
    admission: Admission = field(init=False)  # the edge, shared by every transport
    response_cache: ResponseCache | None = field(init=False)  # None: turned off
    execution: OperationExecutor = field(init=False)  # its plans; graphql-core for the rest
    hub: Hub = field(init=False)  # live events to subscribers
    relay: Relay = field(init=False)  # the outbox to the event log (when live_relay)
    # Mutations' enqueues Redis refused, enqueued again once it answers (tasks/queue.py).
    late_enqueues: LateEnqueues = field(init=False)

    def start(self) -> None:
        """Start the background parts (in the app's lifespan: they need its event loop)."""
        self.audit.start()
        if self.db.replicas is not None:
            self.db.replicas.start()  # polls the replicas' replay positions
        self.skills.start()  # builds from PostgreSQL in the background
        self.hub.start()
        if self.settings.live_relay:
            self.relay.start()

    async def close(self, after_live: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        """Stop and close everything; `after_live` (what the transports hold, such as the SSE
        reservations) is stopped once the relay and the hub have."""
        await self.late_enqueues.close()
        await self.relay.stop()
        await self.hub.stop()
        for stop in after_live:
            await stop()
        await self.audit.stop()  # a normal shutdown writes every queued audit entry
        await self.skills.close()
        if self.db.replicas is not None:
            await self.db.replicas.close()
        await super().close()


@overload
def build_services(
    settings: Settings, jobs: JobSettings, *, schema: None = None
) -> Infrastructure: ...


@overload
def build_services(settings: Settings, jobs: JobSettings, *, schema: Any) -> Services: ...


def build_services(
    settings: Settings, jobs: JobSettings, *, schema: Any | None = None
) -> Infrastructure | Services:
    """Wire a process's parts. The settings must name servers (DATABASE_URL; REDIS_URL or
    Sentinels). Without a schema: a job worker's; with one: a gateway process's."""
    database_url, redis_url = settings.server_urls()
    db = Database(create_engine(settings, database_url))
    redis = create_redis(settings) if schema is not None else create_worker_redis(settings, jobs)
    if settings.db_pooler == "transaction":
        # No connection can LISTEN behind a transaction pooler: commits wake the relays
        # through Redis instead (live/relay.py).
        db.after_commit = CommitSignal(redis)
    if schema is None:
        infrastructure = Infrastructure(settings, jobs, database_url, redis_url, db, redis)
        _connect_queue(redis, jobs)
        return infrastructure
    services = Services(settings, jobs, database_url, redis_url, db, redis, schema)
    _wire_gateway(services)
    _connect_queue(services.redis, jobs)
    return services


def _connect_queue(redis: Redis, jobs: JobSettings) -> None:
    # The process's broker: a gateway enqueues with it (tasks/queue.py), a worker listens.
    broker.connect(redis, jobs)


def _wire_gateway(services: Services) -> None:
    from switchboard.edge.admission import Admission
    from switchboard.edge.auth import Authenticator
    from switchboard.edge.http import result_payload
    from switchboard.execution.executor import OperationExecutor
    from switchboard.execution.response_cache import ResponseCache
    from switchboard.infra.audit import AuditLog
    from switchboard.infra.db import libpq_url
    from switchboard.infra.replicas import ReplicaRouter
    from switchboard.live.hub import Hub
    from switchboard.live.relay import Relay
    from switchboard.skill_search import SkillSearch
    from tasks.queue import LateEnqueues

    settings, db, redis = services.settings, services.db, services.redis
    # Read replicas (DATABASE_REPLICA_URLS): the loaders' reads, fresh enough for the tenant.
    db.replicas = ReplicaRouter.from_settings(settings, db, services.database_url, redis)
    services.audit = AuditLog(db)
    services.skills = SkillSearch.from_settings(settings, db, redis)
    services.authenticator = Authenticator(settings, db, redis)
    services.admission = Admission(settings, services, services.authenticator, services.schema)
    services.response_cache = (
        ResponseCache(
            redis,
            services.admission.breaker,
            {"home": settings.cache_home_ttl_s, "spend": settings.cache_spend_ttl_s},
        )
        if settings.response_cache_enabled
        else None
    )
    services.execution = OperationExecutor(services.schema)
    services.late_enqueues = LateEnqueues(redis)
    # Live events: this process's relay of the outbox, and its hub.
    services.relay = Relay(
        db,
        redis,
        None if settings.db_pooler == "transaction" else libpq_url(services.database_url),
        subscriber=functools.partial(redis_client, settings, socket_connect_timeout=2),
        poll_s=settings.live_relay_poll_s,
        replica_acks=replica_acks(settings),
    )
    planned = settings.executor == "planned"  # SWITCHBOARD_EXECUTOR: graphql-core for all
    services.execution.enabled = planned
    services.hub = Hub(
        services, settings, lambda result: result_payload(result, settings)[1], planned=planned
    )
