"""Test fixtures: real PostgreSQL and Redis (embedded unless DATABASE_URL / REDIS_URL are set).

Each run creates a fresh database `switchboard_test` on the server, migrates it and seeds:
- the demo tenants `acme` and `globex` (scale 1), as `switchboard serve` does;
- `initech`, the same shapes at four times the size, for tests that compare sizes.
The gateway runs in-process behind httpx's ASGI transport with its real lifespan.

With SWITCHBOARD_TEST_PGBOUNCER=1 (`scripts/test --pgbouncer`, and scripts/test's second
pass) the gateway, workers and gateway processes the tests start reach that database through
PgBouncer in transaction mode (tests/support/pgbouncer.py) with SWITCHBOARD_DB_POOLER =
`transaction`; migrating, seeding and `db_conn` (the tests' own back door) stay direct.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Collection, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from domain.ids import to_global_id
from switchboard.app import create_app
from switchboard.devdata.seed import seed_demo, seeding_anchor, stable_id
from switchboard.edge.auth import issue_token
from switchboard.infra.embedded import EmbeddedServices, start_services
from switchboard.infra.migrate import upgrade_to_head_async
from switchboard.settings import PROJECT_DIR, Settings

# One database per run (and per process), so concurrent runs never share one.
TEST_DATABASE = f"switchboard_test_{os.getpid()}"
TEST_TENANTS: dict[str, tuple[str, Decimal | None]] = {
    "acme": ("Acme Outdoor Co.", Decimal("400.00")),
    "globex": ("Globex Corporation", Decimal("250.00")),
}
LARGE_TENANT: dict[str, tuple[str, Decimal | None]] = {"initech": ("Initech", Decimal("900.00"))}
LARGE_SCALE = 4


PGBOUNCER = os.environ.get("SWITCHBOARD_TEST_PGBOUNCER", "").strip().lower() in ("1", "true", "on")


@dataclass(frozen=True)
class Servers:
    database_url: str  # what the gateway and its workers use (through PgBouncer if PGBOUNCER)
    redis_url: str
    direct_url: str = ""  # the database itself; "" when it is `database_url`

    @property
    def direct(self) -> str:
        return self.direct_url or self.database_url

    @property
    def pooler(self) -> str:
        """SWITCHBOARD_DB_POOLER for gateways and workers on `database_url`."""
        return "transaction" if self.direct_url else "direct"


@pytest.fixture(scope="session", autouse=True)
def _nothing_outlives_the_run() -> Iterator[None]:
    """A run stopped by SIGTERM ends as after Ctrl-C: fixtures tear down, so the servers
    stop. At the end, processes tests started and left running (a failed test's worker or
    gateway) are stopped. (Started processes also get SIGTERM if the run is killed:
    `die_with_parent`; a private Valkey left by a killed run goes at the next start.)"""

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_leftover_processes()


def stop_leftover_processes(timeout_s: float = 5.0, spare: Collection[int] = ()) -> None:
    """SIGTERM every process this run started that still runs (but `spare`); SIGKILL after
    `timeout_s`."""
    leftovers = [p for p in psutil.Process().children(recursive=True) if p.pid not in spare]
    if not leftovers:
        return
    print(f"\nstopping processes the tests left running: {[p.pid for p in leftovers]}")
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(leftovers, timeout=timeout_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout_s)


@pytest.fixture(scope="session")
def embedded() -> Iterator[EmbeddedServices]:
    state_dir = Path(
        os.environ.get("SWITCHBOARD_TEST_STATE_DIR", PROJECT_DIR / ".switchboard/test")
    )
    running = start_services(
        state_dir,
        os.environ.get("DATABASE_URL"),
        os.environ.get("REDIS_URL"),
        database_name="postgres",
        private_redis=True,
    )
    try:
        yield running
    finally:
        stop_leftover_processes()  # before the servers they use
        running.stop()


@pytest.fixture(scope="session")
async def servers(embedded: EmbeddedServices) -> AsyncIterator[Servers]:
    database_url = await _fresh_database(embedded.database_url, TEST_DATABASE)
    await upgrade_to_head_async(database_url)
    engine = create_async_engine(database_url)
    anchor = seeding_anchor()
    async with engine.begin() as conn:
        await seed_demo(conn, TEST_TENANTS, anchor=anchor)
        await seed_demo(conn, LARGE_TENANT, scale=LARGE_SCALE, anchor=anchor)
    await engine.dispose()
    redis = Redis.from_url(embedded.redis_url)
    await redis.flushdb()
    await redis.aclose()
    if not PGBOUNCER:
        yield Servers(database_url=database_url, redis_url=embedded.redis_url)
        await _drop_database(embedded.database_url, TEST_DATABASE)
        return
    from tests.support.pgbouncer import PgBouncer

    bouncer = PgBouncer.start(database_url)
    # Processes the tests start (workers, gateways) read it from the environment.
    os.environ["SWITCHBOARD_DB_POOLER"] = "transaction"
    try:
        yield Servers(bouncer.url, embedded.redis_url, direct_url=database_url)
    finally:
        stop_leftover_processes(spare={bouncer.process.pid})  # before the pooler they use
        bouncer.stop()
        await _drop_database(embedded.database_url, TEST_DATABASE)


def _database_url(server_url: str, name: str) -> str:
    base, _, query = server_url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")


async def _fresh_database(server_url: str, name: str) -> str:
    """Drop and create `name` on the server of `server_url`; returns the URL of the new one."""
    await _drop_database(server_url, name)
    conn = await asyncpg.connect(_libpq(_database_url(server_url, "postgres")))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _database_url(server_url, name)


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(_libpq(_database_url(server_url, "postgres")))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def settings(servers: Servers) -> Settings:
    return Settings(
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        mode="test",
        db_pooler=servers.pooler,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


@pytest.fixture(scope="session")
async def db_conn(servers: Servers) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection for arranging and checking rows directly."""
    conn = await asyncpg.connect(_libpq(servers.direct))
    yield conn
    await conn.close()


@pytest.fixture
async def redis(servers: Servers) -> AsyncIterator[Redis]:
    """A Redis client of the test's own, for arranging and checking keys directly."""
    client = Redis.from_url(servers.redis_url)
    yield client
    await client.aclose()


def tenant_gid(slug: str) -> str:
    return to_global_id("Tenant", stable_id(slug, "tenant"))


def user_gid(slug: str, local: str) -> str:
    return to_global_id("User", stable_id("user", f"{local}@{slug}.example"))


def agent_gid(slug: str, role: str) -> str:
    return to_global_id("Agent", stable_id(slug, "agent", role))


@pytest.fixture(scope="session")
def token(settings: Settings) -> Any:
    """token(slug, local="marketer", audience="dashboard") → a signed HS256 token."""

    def make(
        slug: str, local: str = "marketer", audience: str = "dashboard", ttl_s: int = 3600
    ) -> str:
        return issue_token(settings, user_gid(slug, local), tenant_gid(slug), audience, ttl_s)

    return make


@pytest.fixture(scope="session")
def agent_token(settings: Settings) -> Any:
    def make(slug: str, role: str) -> str:
        return issue_token(settings, agent_gid(slug, role), tenant_gid(slug), "agent")

    return make


@pytest.fixture(scope="session")
def gql(client: httpx.AsyncClient) -> Any:
    """gql(query, variables=None, token=None) → the httpx response of a POST /graphql."""

    async def post(
        query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )

    return post


async def add_marketer(
    conn: asyncpg.Connection, settings: Settings, tenant_id: uuid.UUID, slug: str, name: str
) -> str:
    """A MARKETER of the tenant, `marketer@<slug>.example` called `name`; their dashboard
    token."""
    user_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3)",
        user_id,
        f"marketer@{slug}.example",
        name,
    )
    await conn.execute(
        "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'MARKETER')",
        tenant_id,
        user_id,
    )
    return issue_token(
        settings, to_global_id("User", user_id), to_global_id("Tenant", tenant_id), "dashboard"
    )


async def drop_tenant(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
    """Delete every row of the tenant, whatever tables hold a `tenant_id` (children first)."""
    users = [
        r[0]
        for r in await conn.fetch("SELECT user_id FROM memberships WHERE tenant_id = $1", tenant_id)
    ]
    pending = [
        r[0]
        for r in await conn.fetch(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'tenant_id' "
            "AND table_schema = current_schema() AND table_name <> 'tenants' "
            "AND table_name IN (SELECT table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema = current_schema())"
        )
    ]
    for _ in range(len(pending) + 1):  # a table still referenced waits for the next pass
        referenced = []
        for table in pending:
            try:
                await conn.execute(f'DELETE FROM "{table}" WHERE tenant_id = $1', tenant_id)
            except asyncpg.ForeignKeyViolationError:
                referenced.append(table)
        pending = referenced
    assert not pending, pending
    await conn.execute("DELETE FROM preferences WHERE user_id = ANY($1::uuid[])", users)
    await conn.execute("DELETE FROM users WHERE id = ANY($1::uuid[])", users)
    await conn.execute("DELETE FROM tenants WHERE id = $1", tenant_id)
