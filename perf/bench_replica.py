"""Read replicas (issue 19): where a dashboard read load's statements run, and freshness.

A PostgreSQL of the bench's own (tests/support/faults.py's DedicatedPostgres, with
pg_stat_statements preloaded) holds the demo tenants acme and globex (scale 1) and initech
(scale 4), as the tests seed them; a streaming replica of it is made with `pg_basebackup -R`
(tests/support/replica.py), and a Valkey of its own. One `switchboard serve` (one gateway
process, no job worker, response cache off so every query reaches the database) runs twice:

1. without `DATABASE_REPLICA_URLS`, then 2. with the replica. Each time, after a warm-up,
   `--clients` clients send DashboardOverview back to back for `--seconds`, as the marketer
   and viewer of each tenant in turn. Counted: the statements the requests issued (the sum
   of their `x-sql-statements`), the read statements each server ran (pg_stat_statements
   calls of SELECT/WITH statements, less the router's and the relay's own polls and the
   readiness check) and the gateway's `switchboard_db_reads_total`.
3. Freshness with the replica, `--changes` times: acme's marketer renames a campaign
   (updateCampaign); from its response, acme's viewer queries the campaign back to back
   until the new name shows. And the same for a change no mutation records (an UPDATE
   straight on the primary, as a process outside the gateway would make): from its commit.

Run from the repository root, in the venv (about 2 minutes):

    python perf/bench_replica.py            # results to perf/results/bench-replica-*.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import create_async_engine

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway import start_gateway, stop_gateway  # noqa: E402  (perf/gateway.py)
from stats import summary  # noqa: E402  (perf/stats.py)

from domain.ids import to_global_id  # noqa: E402
from switchboard.devdata.seed import seed_demo, seeding_anchor, stable_id  # noqa: E402
from switchboard.edge.auth import issue_token  # noqa: E402
from switchboard.settings import Settings  # noqa: E402
from tests.conftest import LARGE_SCALE, LARGE_TENANT, TEST_TENANTS  # noqa: E402
from tests.support.faults import DedicatedPostgres, DedicatedValkey  # noqa: E402
from tests.support.replica import StreamingReplica  # noqa: E402

SETTINGS = Settings()
DASHBOARD = (REPO / "contract/operations/dashboard/DashboardOverview.graphql").read_text()
UPDATE = """mutation($id: ID!, $name: String!) { updateCampaign(id: $id, input: {name: $name}) {
  campaign { id name } userErrors { code } } }"""
NAME_OF = "query($id: ID!) { node(id: $id) { ... on Campaign { name } } }"
SERVE_ENV = {
    "SWITCHBOARD_MODE": "development",
    "SWITCHBOARD_RATE_LIMIT": "0",
    "SWITCHBOARD_RESPONSE_CACHE": "0",
    "SWITCHBOARD_JWT_SECRET": SETTINGS.jwt_secret,
    "SWITCHBOARD_LOG_LEVEL": "WARNING",
}
# Statements of the gateway's own machinery, not of the requests.
BACKGROUND = re.compile(
    r"pg_wal_lsn_diff|pg_stat_statements|advisory_xact_lock|tenant_events|activity_stream_events"
    r"|alembic_version|^SELECT 1$|pg_catalog|pg_is_in_recovery",
    re.IGNORECASE,
)
READ = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)


def token(slug: str, local: str) -> str:
    user = to_global_id("User", stable_id("user", f"{local}@{slug}.example"))
    tenant = to_global_id("Tenant", stable_id(slug, "tenant"))
    return issue_token(SETTINGS, user, tenant, "dashboard")


async def read_calls(dsn: str) -> tuple[int, list[str]]:
    """Calls of the requests' read statements in the database, and the five most called."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT query, calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = 'switchboard' ORDER BY calls DESC"
        )
    finally:
        await conn.close()
    reads = [r for r in rows if READ.match(r["query"]) and not BACKGROUND.search(r["query"])]
    top = [f"{r['calls']}: {' '.join(r['query'].split())[:90]}" for r in reads[:5]]
    return sum(r["calls"] for r in reads), top


async def reset_statements(*dsns: str) -> None:
    for dsn in dsns:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("SELECT pg_stat_statements_reset()")
        finally:
            await conn.close()


def reads_metric(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'switchboard_db_reads_total\{reason="(\w+)",target="(\w+)"\} (\S+)', line)
        if match:
            found[f"{match[2]}:{match[1]}"] = float(match[3])
    return found


async def dashboard_load(
    http: httpx.AsyncClient, clients: int, seconds: float
) -> tuple[int, int, list[float]]:
    """(requests, statements they issued, latencies in ms)."""
    now = dt.datetime.now(dt.UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    variables = {"monthStart": month.isoformat(), "monthEnd": now.isoformat()}
    tokens = [
        token(slug, local)
        for slug in ("acme", "globex", "initech")
        for local in ("marketer", "viewer")
    ]
    deadline = time.monotonic() + seconds
    statements = 0
    latencies: list[float] = []

    async def client(n: int) -> None:
        nonlocal statements
        for bearer in itertools.islice(itertools.cycle(tokens), n, None):
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            response = await http.post(
                "/graphql",
                json={"query": DASHBOARD, "variables": variables},
                headers={"authorization": f"Bearer {bearer}"},
            )
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and "errors" not in response.json(), response.text
            statements += int(response.headers["x-sql-statements"])

    await asyncio.gather(*(client(n) for n in range(clients)))
    return len(latencies), statements, latencies


async def name_of(http: httpx.AsyncClient, bearer: str, campaign: str) -> str:
    response = await http.post(
        "/graphql",
        json={"query": NAME_OF, "variables": {"id": campaign}},
        headers={"authorization": f"Bearer {bearer}"},
    )
    return response.json()["data"]["node"]["name"]


async def until_seen(
    http: httpx.AsyncClient, bearer: str, campaign: str, name: str
) -> tuple[float, int]:
    """Seconds from now until a query returns `name` (queries back to back; 5 s at most),
    and how many queries that took."""
    started = time.perf_counter()
    queries = 1
    while await name_of(http, bearer, campaign) != name:
        if time.perf_counter() - started > 5:
            raise RuntimeError("the change did not show within 5 s")
        queries += 1
    return time.perf_counter() - started, queries


async def freshness(http: httpx.AsyncClient, primary_dsn: str, changes: int) -> dict[str, Any]:
    marketer, viewer = token("acme", "marketer"), token("acme", "viewer")
    conn = await asyncpg.connect(primary_dsn)
    try:
        rows = await conn.fetch(
            "SELECT id FROM campaigns WHERE tenant_id = $1 ORDER BY created_at LIMIT 2",
            stable_id("acme", "tenant"),
        )
        by_mutation, campaign_id = to_global_id("Campaign", rows[0][0]), rows[1][0]
        direct = to_global_id("Campaign", campaign_id)
        mutation_ms, direct_ms, mutation_queries, direct_queries = [], [], [], []
        for n in range(changes):
            name = f"fresh {n} {uuid.uuid4().hex[:6]}"
            response = await http.post(
                "/graphql",
                json={"query": UPDATE, "variables": {"id": by_mutation, "name": name}},
                headers={"authorization": f"Bearer {marketer}"},
            )
            assert response.json()["data"]["updateCampaign"]["userErrors"] == [], response.text
            seen_s, queries = await until_seen(http, viewer, by_mutation, name)
            mutation_ms.append(seen_s * 1000)
            mutation_queries.append(queries)
            name = f"direct {n} {uuid.uuid4().hex[:6]}"
            await conn.execute("UPDATE campaigns SET name = $1 WHERE id = $2", name, campaign_id)
            seen_s, queries = await until_seen(http, viewer, direct, name)
            direct_ms.append(seen_s * 1000)
            direct_queries.append(queries)
    finally:
        await conn.close()
    return {
        "after_mutation_ms": summary(mutation_ms),
        "after_mutation_queries_max": max(mutation_queries),
        "direct_update_ms": summary(direct_ms),
        "direct_update_queries_max": max(direct_queries),
    }


async def phase(
    label: str,
    env: dict[str, str],
    state: Path,
    primary_dsn: str,
    replica_dsn: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    log = state / f"serve-{label}.log"
    process, port = await asyncio.to_thread(
        start_gateway, state / label, log, {**SERVE_ENV, **env}, 1, extra=["--job-workers", "0"]
    )
    result: dict[str, Any] = {"phase": label}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await dashboard_load(http, args.clients, 3)  # warm-up: plans, pools, the poll
            await reset_statements(primary_dsn, replica_dsn)
            before = reads_metric((await http.get("/metrics")).text)
            requests, statements, latencies = await dashboard_load(http, args.clients, args.seconds)
            after = reads_metric((await http.get("/metrics")).text)
            primary_reads, primary_top = await read_calls(primary_dsn)
            replica_reads, replica_top = await read_calls(replica_dsn)
            result |= {
                "requests": requests,
                "requests_per_s": round(requests / args.seconds, 1),
                "latency_ms": summary(latencies),
                "statements_of_requests": statements,
                "read_statements_on_primary": primary_reads,
                "read_statements_on_replica": replica_reads,
                "primary_share": round(primary_reads / max(1, primary_reads + replica_reads), 4),
                "router_reads": {k: after[k] - before.get(k, 0) for k in after},
                "most_called": {"primary": primary_top, "replica": replica_top},
            }
            # Without a replica too: the baseline of the same measurement.
            result["freshness"] = await freshness(http, primary_dsn, args.changes)
    finally:
        await asyncio.to_thread(stop_gateway, process)
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    primary = DedicatedPostgres()
    valkey = DedicatedValkey()
    replica: StreamingReplica | None = None
    state = Path(tempfile.mkdtemp(prefix="bench-replica-"))
    try:
        valkey.start()
        await primary.preload_statements()
        url = await primary.database("switchboard")
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            anchor = seeding_anchor()
            await seed_demo(conn, TEST_TENANTS, anchor=anchor)
            await seed_demo(conn, LARGE_TENANT, scale=LARGE_SCALE, anchor=anchor)
        await engine.dispose()
        primary_dsn = primary.libpq_url("switchboard")
        conn = await asyncpg.connect(primary_dsn)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.close()
        replica = await asyncio.to_thread(StreamingReplica, primary)
        replica_dsn = replica.libpq_url("switchboard")
        env = {"DATABASE_URL": url, "REDIS_URL": valkey.url}
        with_replica = {**env, "DATABASE_REPLICA_URLS": replica.url("switchboard")}
        phases = [
            await phase("primary-only", env, state, primary_dsn, replica_dsn, args),
            await phase("with-replica", with_replica, state, primary_dsn, replica_dsn, args),
        ]
        return {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "clients": args.clients,
            "seconds": args.seconds,
            "changes": args.changes,
            "phases": phases,
        }
    finally:
        if replica is not None:
            await asyncio.to_thread(replica.close)
        valkey.close()
        primary.close()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--changes", type=int, default=20)
    arguments = parser.parse_args()
    results = asyncio.run(main(arguments))
    out = REPO / "perf/results" / f"bench-replica-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out}")
