"""Behind PgBouncer 1.18 in transaction mode (SWITCHBOARD_DB_POOLER=transaction).

Each test here runs through a PgBouncer of this module's own (tests/support/pgbouncer.py)
with a pool of 3 server connections, so every transaction of two gateway processes and a
job worker may land on a different server connection than the one before: reads,
mutations, a job and its live events must need nothing of a session. The live relays of
these processes get a poll of an hour, so an event that arrives was woken by the commit
signal through Redis, not by LISTEN (which no pooled connection can do) nor by the poll.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic.script import ScriptDirectory
from redis.asyncio import Redis
from sqlalchemy import exc, make_url, text
from starlette.applications import Starlette

from domain.ids import to_global_id
from switchboard.infra.db import Database, create_engine, libpq_url, unavailable
from switchboard.infra.migrate import alembic_config
from switchboard.live.relay import Relay
from switchboard.settings import PROJECT_DIR, Settings
from tests.conftest import Servers, _drop_database, _fresh_database
from tests.support.contract import VARIABLES, query_operations
from tests.support.jobs import Tenant, Worker, enqueue, fresh_tenant, new_work, wait_for
from tests.support.live import ACTIVITY_STREAM, TENANT_EVENTS, GatewayProcess, LiveClient
from tests.support.pgbouncer import PgBouncer

DASHBOARD = query_operations("dashboard")["DashboardOverview"]
DASHBOARD_VARIABLES = {k: VARIABLES[k] for k in ("monthStart", "monthEnd")}
CREATE = """mutation($input: CreateCampaignInput!) {
  createCampaign(input: $input) { campaign { id name } userErrors { code message } } }"""
POOLED = {
    "SWITCHBOARD_DB_POOLER": "transaction",
    "SWITCHBOARD_DB_POOL_SIZE": "6",
    "SWITCHBOARD_LIVE_RELAY_POLL_S": "3600",  # only the commit signal wakes a relay
}


@pytest.fixture(scope="module")
def bouncer(servers: Servers) -> Iterator[PgBouncer]:
    pooler = PgBouncer.start(servers.direct, pool_size=3)
    yield pooler
    pooler.stop()


@pytest.fixture(scope="module")
async def tenant(servers: Servers) -> Tenant:
    return await fresh_tenant(servers.direct, "pooler")


@pytest.fixture(scope="module")
async def gateways(bouncer: PgBouncer, servers: Servers) -> AsyncIterator[list[GatewayProcess]]:
    """Two gateway processes on PgBouncer, each with a relay of its own."""
    log_dir = Path(bouncer.folder)
    started = [
        GatewayProcess(bouncer.url, servers.redis_url, log_dir / f"gateway-{n}.log", **POOLED)
        for n in range(2)
    ]
    try:
        for gateway in started:
            await gateway.ready()
        yield started
    finally:
        for gateway in started:
            gateway.stop()


@pytest.fixture
async def no_session_relay(app: Starlette) -> AsyncIterator[None]:
    """The session gateway's relay (in process, on LISTEN when direct) stopped, so that
    only the pooled processes' relays can publish what commits during the test."""
    relay: Relay = app.state.relay
    await relay.stop()
    try:
        yield
    finally:
        relay.start()


async def _post(port: int, token: str, query: str, variables: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": query, "variables": variables},
            headers={"authorization": f"Bearer {token}"},
        )


async def test_a_gateway_configured_direct_cannot_connect_through_pgbouncer(
    bouncer: PgBouncer,
) -> None:
    """Why the setting exists: PgBouncer 1.18 refuses `statement_timeout` as a startup
    parameter, which is how a direct gateway sets its timeout."""
    db = Database(create_engine(Settings(db_pooler="direct"), bouncer.url))
    try:
        with pytest.raises(Exception, match="unsupported startup parameter: statement_timeout"):
            await db.fetch("SELECT 1")
    finally:
        await db.dispose()
    pooled = Database(create_engine(Settings(db_pooler="transaction"), bouncer.url))
    try:
        assert [tuple(r) for r in await pooled.fetch("SELECT 1")] == [(1,)]
    finally:
        await pooled.dispose()


async def test_the_statement_timeout_holds_through_pgbouncer(
    bouncer: PgBouncer, db_conn: asyncpg.Connection
) -> None:
    """No startup parameter carries it, yet a statement past SWITCHBOARD_DB_STATEMENT_TIMEOUT_MS
    is cancelled on the server and fails as PostgreSQL's own timeout does (not as an
    outage), on every path; the connection serves on."""
    settings = Settings(
        db_pooler="transaction", db_statement_timeout_ms=300, db_pool_size=1, db_max_overflow=0
    )
    db = Database(create_engine(settings, bouncer.url))
    try:
        for attempt in (
            db.fetch("SELECT pg_sleep(60)"),
            db.fetch(text("SELECT pg_sleep(60)")),
            _in_transaction(db, "SELECT pg_sleep(60)"),
        ):
            with pytest.raises(exc.DBAPIError, match="due to statement timeout") as raised:
                await attempt
            assert not unavailable(raised.value)
        assert [tuple(r) for r in await db.fetch("SELECT 1")] == [(1,)]
    finally:
        await db.dispose()

    async def nothing_sleeps() -> bool:
        running = await db_conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'"
        )
        return running == 0

    await wait_for(nothing_sleeps, 10)


async def _in_transaction(db: Database, sql: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(text(sql))


async def test_statements_of_every_path_interleave_on_shared_server_connections(
    bouncer: PgBouncer,
) -> None:
    """Raw reads, SQLAlchemy's autocommit reads and transactions of 8 concurrent callers
    over 3 server connections: each answers its own value, none fails (named statements,
    even uniquely named ones, fail here: "prepared statement … does not exist")."""
    db = Database(create_engine(Settings(db_pooler="transaction", db_pool_size=8), bouncer.url))

    async def caller(n: int) -> None:
        for i in range(25):
            assert [tuple(r) for r in await db.fetch("SELECT CAST(:x AS int)", {"x": n})] == [(n,)]
            rows = await db.fetch(text("SELECT CAST(:x AS int) + :i"), {"x": n, "i": i})
            assert rows[0][0] == n + i
            async with db.transaction() as conn:
                got = await conn.execute(text("SELECT CAST(:x AS int) * 2"), {"x": n})
                assert got.scalar() == 2 * n

    try:
        await asyncio.gather(*(caller(n) for n in range(8)))
    finally:
        await db.dispose()


async def test_a_relay_pass_wakes_no_relay(bouncer: PgBouncer, servers: Servers) -> None:
    """Behind the pooler a commit wakes the relays through Redis (`after_commit`), but not
    a relay pass's own commit, which wrote no outbox row: when it did, every pass woke
    every relay, its own included, for another pass without end (an idle gateway process
    published about 285 wake-ups a second and spent 35-45% of a core on them)."""
    db = Database(create_engine(Settings(db_pooler="transaction"), bouncer.url))
    commits: list[None] = []
    db.after_commit = lambda: commits.append(None)
    redis = Redis.from_url(servers.redis_url)
    relay = Relay(db, redis, None)
    try:
        async with db.transaction() as conn:
            await conn.execute(text("SELECT 1"))
        assert len(commits) == 1  # any other transaction's commit wakes them
        await relay.relay_pending()
        await relay.purge()
        assert len(commits) == 1
    finally:
        await redis.aclose()
        await db.dispose()


async def test_two_gateways_serve_dashboards_and_mutations_through_pgbouncer(
    gateways: list[GatewayProcess],
    tenant: Tenant,
    gql: Any,
    token: Any,
    db_conn: asyncpg.Connection,
) -> None:
    """Concurrent DashboardOverviews and createCampaigns on both processes (12 client
    connections over 3 server connections): every answer is right, none is a 500."""
    expected = (await gql(DASHBOARD, DASHBOARD_VARIABLES, token("acme"))).json()
    assert "errors" not in expected and expected["data"]["tenant"]["name"]
    reader, writer = token("acme"), token(tenant.slug)
    names = [f"Pooled {n}" for n in range(24)]

    async def read(port: int) -> None:
        for _ in range(6):
            response = await _post(port, reader, DASHBOARD, DASHBOARD_VARIABLES)
            assert response.status_code == 200, response.text
            assert response.json() == expected

    async def write(port: int, name: str) -> None:
        response = await _post(port, writer, CREATE, {"input": {"name": name}})
        assert response.status_code == 200, response.text
        payload = response.json()["data"]["createCampaign"]
        assert payload["userErrors"] == [] and payload["campaign"]["name"] == name

    ports = [gateway.port for gateway in gateways]
    await asyncio.gather(
        *(read(port) for port in ports for _ in range(4)),
        *(write(ports[n % 2], name) for n, name in enumerate(names)),
    )
    created = await db_conn.fetch(
        "SELECT name FROM campaigns WHERE tenant_id = $1 AND name LIKE 'Pooled %'", tenant.id
    )
    assert sorted(r["name"] for r in created) == sorted(names)


async def test_a_mutation_on_one_gateway_reaches_a_subscriber_of_the_other(
    gateways: list[GatewayProcess], tenant: Tenant, token: Any, no_session_relay: None
) -> None:
    first, second = gateways
    async with LiveClient.connect(first.url, token(tenant.slug)) as live:
        await live.subscribe("1", TENANT_EVENTS)
        name = f"Signalled {uuid.uuid4().hex[:6]}"
        response = await _post(second.port, token(tenant.slug), CREATE, {"input": {"name": name}})
        assert response.json()["data"]["createCampaign"]["userErrors"] == []
        _, data = await live.next_data()
    assert data["tenantEvents"]["campaign"]["name"] == name


async def test_a_job_runs_through_pgbouncer_and_streams_its_events(
    bouncer: PgBouncer,
    gateways: list[GatewayProcess],
    servers: Servers,
    tenant: Tenant,
    token: Any,
    db_conn: asyncpg.Connection,
    no_session_relay: None,
) -> None:
    """A worker on PgBouncer runs an activity to AWAITING_APPROVAL; a subscriber of a
    pooled gateway sees its status and text, woken by the worker's commit signals."""
    (activity,) = await new_work(db_conn, tenant, "COPYWRITER")
    gid = to_global_id("Activity", activity)
    redis = Redis.from_url(servers.redis_url)
    worker = Worker(bouncer.url, servers.redis_url, [tenant], **POOLED)
    try:
        async with LiveClient.connect(gateways[0].url, token(tenant.slug)) as live:
            # From the activity's first event: new_work's commit (straight to the database,
            # as no gateway commits) woke no relay, so its QUEUED row goes with the next.
            await live.subscribe("1", ACTIVITY_STREAM, {"activityId": gid, "after": "0-0"})
            await worker.ready()
            assert await enqueue(redis, tenant, "COPYWRITER", activity, 5)
            events = []
            while not events or events[-1]["status"] != "AWAITING_APPROVAL":
                events.append((await live.next_data())[1]["activityStream"])
    finally:
        worker.stop()
        await redis.aclose()
    assert [(e["kind"], e["status"]) for e in events[:2]] == [
        ("STATUS", "QUEUED"),
        ("STATUS", "RUNNING"),
    ]
    text = "".join(e["text"] for e in events if e["kind"] == "TOKEN")
    output = await db_conn.fetchval("SELECT output FROM activities WHERE id = $1", activity)
    assert text and text == output

    async def approval_pending() -> bool:
        return bool(
            await db_conn.fetchval(
                "SELECT count(*) FROM approvals WHERE activity_id = $1 AND status = 'PENDING'",
                activity,
            )
        )

    await wait_for(approval_pending, 5)


def _switchboard(environment: dict[str, str], *command: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", *command],
        cwd=PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_the_commands_work_through_pgbouncer(
    bouncer: PgBouncer, servers: Servers, tmp_path: Path
) -> None:
    """`seed --demo` (which migrates as `migrate` does), `token` and `skill` with only
    DATABASE_URL (PgBouncer) and SWITCHBOARD_DB_POOLER=transaction, on a fresh database."""
    name = f"switchboard_pooled_{os.getpid()}"
    direct = await _fresh_database(servers.direct, name)
    environment = {
        **os.environ,
        "DATABASE_URL": make_url(bouncer.url).set(database=name).render_as_string(False),
        "REDIS_URL": servers.redis_url,
        "SWITCHBOARD_DB_POOLER": "transaction",
        "SWITCHBOARD_STATE_DIR": str(tmp_path),
    }
    environment.pop("DATABASE_DIRECT_URL", None)
    (tmp_path / "skill.md").write_text("# Pooled briefs\n\nWrite briefs that survive a pooler.\n")
    try:
        _switchboard(environment, "seed", "--demo")  # migrates first, the way `migrate` does
        owner = ["--tenant", "acme", "--email", "owner@acme.example"]
        assert _switchboard(environment, "token", *owner).strip().count(".") == 2  # a JWT
        skill = ["skill", "--name", "Pooled briefs", "--content-file", str(tmp_path / "skill.md")]
        assert "created" in _switchboard(environment, *skill)
        conn = await asyncpg.connect(libpq_url(direct))
        try:
            slugs = {r["slug"] for r in await conn.fetch("SELECT slug FROM tenants")}
            skills = await conn.fetchval("SELECT count(*) FROM skills WHERE name = 'Pooled briefs'")
        finally:
            await conn.close()
        assert slugs == {"acme", "globex"} and skills == 1
    finally:
        await _drop_database(servers.direct, name)


async def test_migrate_uses_the_direct_url_when_one_is_set(
    servers: Servers, tmp_path: Path
) -> None:
    """With DATABASE_DIRECT_URL, `migrate` never needs DATABASE_URL (here: nothing listens)."""
    name = f"switchboard_direct_{os.getpid()}"
    direct = await _fresh_database(servers.direct, name)
    environment = {
        **os.environ,
        "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
        "DATABASE_DIRECT_URL": direct,
        "REDIS_URL": servers.redis_url,
        "SWITCHBOARD_DB_POOLER": "transaction",
        "SWITCHBOARD_STATE_DIR": str(tmp_path),
    }
    try:
        _switchboard(environment, "migrate")
        conn = await asyncpg.connect(libpq_url(direct))
        try:
            revision = await conn.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await conn.close()
        assert revision == ScriptDirectory.from_config(alembic_config(direct)).get_current_head()
    finally:
        await _drop_database(servers.direct, name)


async def test_a_read_behind_pgbouncer_costs_postgresql_one_statement() -> None:
    """asyncpg asks for client_encoding "utf-8"; PgBouncer, comparing it as text with the
    server's "UTF8", sent `SET client_encoding` before every transaction it assigned: twice
    PostgreSQL's statements for every read. Asked for as "UTF8", it sends none."""
    from tests.support.faults import DedicatedPostgres

    postgres = DedicatedPostgres()
    try:
        await postgres.preload_statements()
        bouncer = PgBouncer.start(postgres.url())
        db = Database(create_engine(Settings(db_pooler="transaction"), bouncer.url))
        try:
            for n in range(20):
                rows = await db.fetch("SELECT CAST(:n AS int) AS n", {"n": n})
                assert [tuple(r) for r in rows] == [(n,)]
        finally:
            await db.dispose()
            bouncer.stop()
        admin = await asyncpg.connect(postgres.libpq_url())
        try:
            counts = {
                row["query"]: row["calls"]
                for row in await admin.fetch("SELECT query, calls FROM pg_stat_statements")
            }
        finally:
            await admin.close()
        assert counts.get("SELECT CAST($1 AS int) AS n") == 20
        assert not [query for query in counts if "client_encoding" in query]
    finally:
        postgres.close()
