"""Beyond one machine: the gateway direct on PostgreSQL against behind PgBouncer 1.18 in
transaction mode (SWITCHBOARD_DB_POOLER=transaction), in one run.

For each mode, in alternating rounds (direct, pooled, pooled, direct, …, so that a noisy
stretch of the shared machine hits both alike), the script starts `switchboard serve
--workers 1 --job-workers 0` on the embedded PostgreSQL of SWITCHBOARD_STATE_DIR (default
.switchboard/perf) or on a PgBouncer in front of it (tests/support/pgbouncer.py: transaction
mode, pool 25), with rate limits and the response cache off (every request reaches the
database), and measures from one client, one request at a time:

- DashboardOverview of the bench tenant's marketer: client and server (`x-response-time`)
  latency, SQL statements, and CPU per request of the gateway process and of PgBouncer;
- updateCampaign (a rename of one bench campaign, back at the end), the same figures, and
  live-event latency: from sending the mutation until its CAMPAIGN_UPDATED event reaches a
  TenantEvents websocket subscriber of the same gateway (direct: the relay wakes on
  LISTEN/NOTIFY; pooled: on the Redis commit signal).

Run (repository root, in the venv; the bench tenant once, as for bench_operations.py):

    export SWITCHBOARD_STATE_DIR=$PWD/.switchboard/perf
    switchboard seed --demo && switchboard seed --bench
    python perf/bench_pooler.py --rounds 2 --runs 200 --json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway import cpu_s, gateway_pid, start_gateway, stop_gateway  # noqa: E402  (perf/gateway.py)
from stats import summary  # noqa: E402  (perf/stats.py)

from domain.ids import to_global_id  # noqa: E402
from switchboard.devdata.seed import stable_id  # noqa: E402
from switchboard.edge.auth import issue_token  # noqa: E402
from switchboard.infra.embedded import start_services  # noqa: E402
from switchboard.settings import PROJECT_DIR, Settings  # noqa: E402
from tests.support.live import TENANT_EVENTS, LiveClient  # noqa: E402
from tests.support.pgbouncer import PgBouncer  # noqa: E402

RESULTS = REPO / "perf" / "results"
DASHBOARD = (REPO / "contract/operations/dashboard/DashboardOverview.graphql").read_text()
UPDATE = """mutation BenchRename($id: ID!, $input: UpdateCampaignInput!) {
  updateCampaign(id: $id, input: $input) { campaign { id name } userErrors { code message } } }"""
CAMPAIGN = "query { tenant { campaigns(first: 1, status: ACTIVE) { edges { node { id name } } } } }"
SLUG = "bench"


def tokens() -> str:
    user = to_global_id("User", stable_id("user", f"marketer@{SLUG}.example"))
    tenant = to_global_id("Tenant", stable_id(SLUG, "tenant"))
    return issue_token(Settings(), user, tenant, "dashboard")


def month() -> dict[str, str]:
    now = dt.datetime.now(dt.UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {
        "monthStart": start.isoformat(),
        "monthEnd": (start + dt.timedelta(days=32)).replace(day=1).isoformat(),
    }


async def post(
    http: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any]
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await http.post(
        "/graphql",
        content=orjson.dumps({"query": query, "variables": variables}),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    elapsed = (time.perf_counter() - started) * 1000
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
    return response, elapsed


def server_ms(response: httpx.Response) -> float:
    return float(response.headers["x-response-time"].removesuffix("ms"))


async def measure(port: int, pids: dict[str, int], runs: int, warmup: int) -> dict[str, Any]:
    token = tokens()
    figures: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        variables = month()
        for _ in range(warmup):
            await post(http, token, DASHBOARD, variables)
        client, server, statements = [], [], set()
        cpu = {name: cpu_s(pid) for name, pid in pids.items()}
        for _ in range(runs):
            response, elapsed = await post(http, token, DASHBOARD, variables)
            client.append(elapsed)
            server.append(server_ms(response))
            statements.add(response.headers.get("x-sql-statements"))
        figures["dashboard"] = {
            "client_ms": summary(client),
            "server_ms": summary(server),
            "sql_statements": sorted(statements),
            "cpu_ms_per_request": {
                name: round((cpu_s(pid) - cpu[name]) * 1000 / runs, 3) for name, pid in pids.items()
            },
        }

        response, _ = await post(http, token, CAMPAIGN, {})
        node = response.json()["data"]["tenant"]["campaigns"]["edges"][0]["node"]
        url = f"ws://127.0.0.1:{port}/graphql"
        async with LiveClient.connect(url, token) as live:
            await live.subscribe("1", TENANT_EVENTS)
            client, server, event = [], [], []
            try:
                for n in range(warmup + runs):
                    if n == warmup:
                        cpu = {name: cpu_s(pid) for name, pid in pids.items()}
                    name = f"{node['name']} ({n % 2})"
                    started = time.perf_counter()
                    rename = {"id": node["id"], "input": {"name": name}}
                    response, elapsed = await post(http, token, UPDATE, rename)
                    while True:  # its event (no other change of the tenant is under way)
                        data = (await live.next_data(timeout=30))[1]["tenantEvents"]
                        if data["campaign"] and data["campaign"]["name"] == name:
                            break
                    arrived = (time.perf_counter() - started) * 1000
                    if n >= warmup:
                        client.append(elapsed)
                        server.append(server_ms(response))
                        event.append(arrived)
            finally:
                original = {"id": node["id"], "input": {"name": node["name"]}}
                await post(http, token, UPDATE, original)
        figures["mutation"] = {
            "client_ms": summary(client),
            "server_ms": summary(server),
            "event_after_send_ms": summary(event),
            "cpu_ms_per_request": {
                name: round((cpu_s(pid) - cpu[name]) * 1000 / runs, 3) for name, pid in pids.items()
            },
        }
    return figures


async def one(
    mode: str, database_url: str, redis_url: str, state_dir: Path, bouncer: PgBouncer, args: Any
) -> dict[str, Any]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SWITCHBOARD_DB_POOLER": mode,
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_RESPONSE_CACHE": "0",
    }
    log = RESULTS / f"pooler-gateway-{mode}.log"
    process, port = start_gateway(state_dir, log, env, extra=["--job-workers", "0"])
    try:
        pids = {"gateway": gateway_pid(process)}
        if mode == "transaction":
            pids["pgbouncer"] = bouncer.process.pid
        return await measure(port, pids, args.runs, args.warmup)
    finally:
        stop_gateway(process)


def ratio(pooled: float, direct: float) -> float:
    return round(pooled / direct, 2) if direct else float("nan")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds per mode, alternating")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="also write perf/results/")
    args = parser.parse_args()
    state_dir = Path(os.environ.get("SWITCHBOARD_STATE_DIR", PROJECT_DIR / ".switchboard/perf"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    services = start_services(state_dir, None, None)
    bouncer = PgBouncer.start(services.database_url)
    runs: list[dict[str, Any]] = []
    try:
        urls = {"direct": services.database_url, "transaction": bouncer.url}
        for round_ in range(args.rounds):
            order = ("direct", "transaction") if round_ % 2 == 0 else ("transaction", "direct")
            for mode in order:
                started = time.strftime("%H:%M:%S", time.gmtime())
                figures = await one(mode, urls[mode], services.redis_url, state_dir, bouncer, args)
                runs.append({"round": round_ + 1, "mode": mode, "started_utc": started, **figures})
                print(orjson.dumps(runs[-1]).decode(), flush=True)
    finally:
        bouncer.stop()
        services.stop()

    def mean(mode: str, *path: str) -> float:
        values = []
        for run in runs:
            if run["mode"] == mode:
                value: Any = run
                for key in path:
                    value = value[key]
                values.append(value)
        return sum(values) / len(values)

    rows = [
        ("dashboard", "client_ms", "p50"),
        ("dashboard", "client_ms", "p99"),
        ("dashboard", "server_ms", "p50"),
        ("dashboard", "cpu_ms_per_request", "gateway"),
        ("mutation", "client_ms", "p50"),
        ("mutation", "server_ms", "p50"),
        ("mutation", "event_after_send_ms", "p50"),
        ("mutation", "event_after_send_ms", "p99"),
        ("mutation", "cpu_ms_per_request", "gateway"),
    ]
    print("\nmean over rounds: direct | transaction | ratio")
    table = []
    for path in rows:
        direct, pooled = mean("direct", *path), mean("transaction", *path)
        table.append({"figure": ".".join(path), "direct": direct, "transaction": pooled})
        print(f"{'.'.join(path):<40} {direct:8.2f} | {pooled:8.2f} | {ratio(pooled, direct)}")
    for phase in ("dashboard", "mutation"):
        print(
            f"{phase}.cpu_ms_per_request.pgbouncer{'':<13}        – | "
            f"{mean('transaction', phase, 'cpu_ms_per_request', 'pgbouncer'):8.2f}"
        )
    if args.json:
        out = RESULTS / f"pooler-{time.strftime('%Y%m%d-%H%M%S')}.json"
        machine = {"nproc": os.cpu_count(), "python": platform.python_version()}
        machine["load_average"] = os.getloadavg()
        report = {"machine": machine, "runs": runs, "means": table}
        out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
