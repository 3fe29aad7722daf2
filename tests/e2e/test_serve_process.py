"""`switchboard serve` as operators run it, from outside: the real command with a state
folder of its own (so its own embedded PostgreSQL and Valkey), real signals, real processes.

- A job worker that dies is started again: a new pid, one log line, the restart counter
  of /metrics goes up, and a job dispatched afterwards runs.
- SIGTERM, and SIGINT the same way (with two gateway processes and two job workers), stop
  everything within the stop timeout: no process of serve's process groups is left, the
  embedded servers are stopped, and an open websocket got close code 1001 (going away).
- A second signal during the stop kills what remains at once (a job worker waiting for its
  running job) and still stops the embedded servers.
- Keep-alive connections spread over the gateway processes (each listens on the port with
  SO_REUSEPORT): of 20 connections to `--workers 2`, each process holds some.

The first `serve` (the slow start: a new database, migrations, demo data) serves the first
two tests; the later starts reuse its folder.
"""

from __future__ import annotations

import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from domain.ids import parse_id_of, to_global_id
from domain.store.work import create_deliverable
from switchboard.processes.supervisor import backoff_s
from tests.conftest import Servers, _drop_database, _fresh_database, _libpq
from tests.support.edge import PRODUCTION_SECRET
from tests.support.jobs import Tenant, fresh_tenant, wait_for
from tests.support.live import TENANT_EVENTS, LiveClient
from tests.support.processes import Serve, in_groups, none_left, serve_token, servers_of

STOP_TIMEOUT_S = 10.0  # SWITCHBOARD_STOP_TIMEOUT_S's default: the test sets no other
DISPATCH = """mutation Dispatch($input: DispatchActivityInput!) {
  dispatchActivity(input: $input) { activity { id } userErrors { code message } } }"""


@pytest.fixture(scope="module")
def state_dir() -> Iterator[Path]:
    # Not under pytest's temporary folder: a concurrent pytest run makes its root private
    # again, and the embedded PostgreSQL's user would lose the way to its data.
    folder = Path(tempfile.mkdtemp(prefix="switchboard-serve-"))
    yield folder / "state"
    shutil.rmtree(folder, ignore_errors=True)  # logs and a database of ~50 MB


@pytest.fixture
def serves(state_dir: Path) -> Iterator[list[Serve]]:
    """Start `serve`s with `serves.append(Serve(…))`; any still running at the end stop."""
    started: list[Serve] = []
    yield started
    for serve in started:
        serve.stop()
        print(f"--- serve {serve.process.pid} ---\n{serve.output()[-6000:]}")


@pytest.fixture(scope="module")
async def first_serve(state_dir: Path) -> AsyncIterator[Serve]:
    serve = Serve(state_dir, state_dir.parent / "serve-first.log")
    try:
        await serve.ready()
        yield serve
    finally:
        serve.stop()
        print(f"--- serve {serve.process.pid} ---\n{serve.output()[-6000:]}")


async def _dispatch(serve: Serve, tenant: Tenant) -> uuid.UUID:
    """An activity dispatched through the API, as the dashboard does."""
    db = await asyncpg.connect(serve.database_url.replace("+asyncpg", ""))
    try:
        campaign = await db.fetchval(
            "SELECT id FROM campaigns WHERE tenant_id = $1 AND status = 'ACTIVE' "
            "ORDER BY created_at LIMIT 1",
            tenant.id,
        )
    finally:
        await db.close()
    engine = create_async_engine(serve.database_url)
    try:
        async with engine.begin() as conn:
            deliverable = await create_deliverable(
                conn, tenant.id, campaign, "Supervised", "BLOG_POST", None
            )
    finally:
        await engine.dispose()
    variables = {
        "input": {
            "deliverableId": to_global_id("Deliverable", deliverable["id"]),
            "role": "COPYWRITER",
        }
    }
    body = {"query": DISPATCH, "variables": variables}
    response = await serve.graphql(body, serve_token(tenant.slug))
    payload = response.json()["data"]["dispatchActivity"]
    assert payload["userErrors"] == [], payload
    return parse_id_of("Activity", payload["activity"]["id"])


async def _reaches(serve: Serve, activity: uuid.UUID, status: str) -> None:
    db = await asyncpg.connect(serve.database_url.replace("+asyncpg", ""))
    try:

        async def reached() -> bool:
            return await db.fetchval("SELECT status FROM activities WHERE id = $1", activity) == (
                status
            )

        await wait_for(reached, timeout=30)
    finally:
        await db.close()


async def test_a_killed_job_worker_is_started_again_and_runs_jobs(first_serve: Serve) -> None:
    serve = first_serve
    [old] = serve.job_workers()
    counted = await serve.restarts()
    ready = serve.output().count("worker ready")
    old.kill()

    async def replaced() -> bool:
        workers = serve.job_workers()
        return (
            bool(workers)
            and workers[0].pid != old.pid
            and (serve.output().count("worker ready") > ready)
        )

    await wait_for(replaced, timeout=30)

    async def restart_counted() -> bool:
        return await serve.restarts() == counted + 1

    await wait_for(restart_counted, timeout=10)
    lines = [line for line in serve.output().splitlines() if f"(pid {old.pid}) exited" in line]
    assert len(lines) == 1 and '"exit":"signal SIGKILL"' in lines[0], lines

    tenant = await fresh_tenant(serve.database_url, "serve")
    activity = await _dispatch(serve, tenant)
    await _reaches(serve, activity, "AWAITING_APPROVAL")


async def _stop_and_check(
    serve: Serve, first: signal.Signals, second: signal.Signals | None = None
) -> float:
    """Signal serve while a websocket subscriber is open (`second`, if given, once the
    subscriber got its close); check that the subscriber got 1001 and that nothing is left
    within the stop timeout. Returns the seconds from the signal to nothing left."""
    processes = [*serve.tree(), *servers_of(serve.state_dir)]
    groups = {p.pid for p in serve.tree()}  # serve's and each child's own group
    assert len(servers_of(serve.state_dir)) >= 2, "the embedded PostgreSQL and Valkey"
    async with LiveClient.connect(serve.ws_url) as client:
        await client.init(serve_token("acme"))
        await client.subscribe("events", TENANT_EVENTS)
        signalled = time.monotonic()
        serve.process.send_signal(first)
        code, reason = await client.closed()
        if second is not None:
            serve.process.send_signal(second)
    await none_left(processes, STOP_TIMEOUT_S - (time.monotonic() - signalled))
    stopped_s = time.monotonic() - signalled
    assert code == 1001, (code, reason)
    assert not in_groups(groups)
    assert not servers_of(serve.state_dir)
    assert serve.process.wait(5) == 0
    names = first.name + (f" + {second.name}" if second else "")
    print(f"{names}: nothing of serve left {stopped_s:.2f} s after the signal")
    return stopped_s


async def test_sigterm_stops_everything_and_sends_websockets_away(first_serve: Serve) -> None:
    await _stop_and_check(first_serve, signal.SIGTERM)


async def test_sigint_stops_the_same_way_with_several_processes(
    state_dir: Path, serves: list[Serve]
) -> None:
    # Several of each: every gateway process and every job worker stops.
    serve = Serve(
        state_dir, state_dir.parent / "serve-sigint.log", "--workers", "2", "--job-workers", "2"
    )
    serves.append(serve)
    await serve.ready(gateways=2, job_workers=2)
    assert len(serve.job_workers()) == 2
    await _stop_and_check(serve, signal.SIGINT)


async def test_keep_alive_connections_spread_over_the_gateway_processes(
    state_dir: Path, serves: list[Serve]
) -> None:
    serve = Serve(
        state_dir, state_dir.parent / "serve-spread.log", "--workers", "2", "--job-workers", "0"
    )
    serves.append(serve)
    await serve.ready(gateways=2, job_workers=0)
    gateways = [
        c
        for c in psutil.Process(serve.process.pid).children()
        if "switchboard.processes.gateway" in c.cmdline()
    ]
    assert len(gateways) == 2
    clients = [httpx.AsyncClient(base_url=serve.url) for _ in range(20)]
    try:
        for client in clients:  # one keep-alive connection each, accepted once it answered
            assert (await client.get("/healthz")).status_code == 200
        held = {
            gateway.pid: sum(
                1
                for c in gateway.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == serve.port
            )
            for gateway in gateways
        }
    finally:
        for client in clients:
            await client.aclose()
    assert sum(held.values()) == 20, held
    assert all(count > 0 for count in held.values()), held  # all 20 on one: p = 2e-6


async def test_a_second_signal_kills_what_remains(state_dir: Path, serves: list[Serve]) -> None:
    # A run takes minutes: the job worker would wait out its grace for it.
    serve = Serve(
        state_dir, state_dir.parent / "serve-force.log", SWITCHBOARD_SIM_TOKEN_DELAY_MS="1000"
    )
    serves.append(serve)
    await serve.ready()
    tenant = await fresh_tenant(serve.database_url, "force")
    await _reaches(serve, await _dispatch(serve, tenant), "RUNNING")
    await _stop_and_check(serve, signal.SIGTERM, signal.SIGTERM)
    assert re.search(r"killing job_worker \(pid \d+\): a second signal \(SIGTERM\)", serve.output())


def test_restarts_back_off_from_half_a_second_to_thirty() -> None:
    assert [backoff_s(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


async def test_a_production_serve_migrates_an_empty_database_and_seeds_no_demo_tenant(
    servers: Servers, tmp_path: Path
) -> None:
    name = f"serve_production_{uuid.uuid4().hex[:8]}"
    database_url = await _fresh_database(servers.direct, name)
    try:
        serve = Serve(
            tmp_path / "state",
            tmp_path / "serve.log",
            "--workers",
            "1",
            "--no-worker",
            DATABASE_URL=database_url,
            REDIS_URL=servers.redis_url,
            SWITCHBOARD_MODE="production",
            SWITCHBOARD_JWT_SECRET=PRODUCTION_SECRET,
        )
        try:
            await serve.ready(job_workers=0)
            conn = await asyncpg.connect(_libpq(database_url))
            try:
                assert await conn.fetchval("SELECT count(*) FROM alembic_version") == 1
                assert await conn.fetchval("SELECT count(*) FROM tenants") == 0
            finally:
                await conn.close()
            assert "Demo tokens" not in serve.output()
        finally:
            serve.stop()
    finally:
        await _drop_database(servers.direct, name)
