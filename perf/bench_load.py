"""Gateway CPU per request under concurrent clients, for one checkout or several in turn.

This script owns the load figures of perf/README.md's "The planned executor" section
("Under load"). For each round and each `--checkouts` folder (default: this one), it starts
`switchboard serve --workers 1 --no-worker` from that folder (its code, this venv) in
production mode with the response cache off, over the PostgreSQL and Valkey of
DATABASE_URL / REDIS_URL (else the embedded ones of SWITCHBOARD_STATE_DIR), warms up for
3 s, then sends DashboardOverview as the tenant's marketer from `--clients` keep-alive
connections for `--seconds` and reports:

- req/s, and the latency median;
- the gateway process's CPU time per request (the `gateway_process` child of `serve`);
- PostgreSQL sessions opened during the window (`pg_stat_database.sessions`): a pool that
  throws connections away shows here;
- the gateway's RSS at the end.

Every answer must be a 200 without errors. The clients run in this process (httpx on
asyncio), on the same machine: they take CPU from the gateway, alike for every checkout.
A second checkout to compare with: `git archive <commit> | tar -x -C /tmp/before`.

    source /tmp/peer-pg-exec/pgsb/run/anchor.env     # or any database with the bench data
    python perf/bench_load.py --checkouts /tmp/before . --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from gateway import (  # perf/gateway.py, beside this script
    dashboard_overview_body,
    gateway_pid,
    marketer_token,
    start_gateway,
    stop_gateway,
)

from switchboard.infra.embedded import start_services
from switchboard.settings import Settings

REPO = Path(__file__).resolve().parent.parent
OPERATION = REPO / "contract/operations/dashboard/DashboardOverview.graphql"
WARMUP_S = 3.0


async def drive(url: str, body: bytes, token: str, clients: int, seconds: float) -> list[float]:
    """Send `body` from `clients` connections until `seconds` pass; each latency in ms."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:

        async def client() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await http.post("/graphql", content=body)
                if response.status_code != 200 or b'"errors"' in response.content:
                    raise RuntimeError(f"bad answer {response.status_code}: {response.text[:300]}")
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


async def sessions(libpq: str) -> int:
    conn = await asyncpg.connect(libpq)
    try:
        query = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


def measure(checkout: Path, env: dict[str, str], body: bytes, token: str, args: Any) -> dict:
    libpq = env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
    log = Path(tempfile.gettempdir()) / f"switchboard-bench-load-{os.getpid()}.log"
    state = Path(tempfile.mkdtemp(prefix="switchboard-bench-load-"))
    process, port = start_gateway(state, log, env, extra=("--no-worker",), cwd=checkout)
    try:
        gateway = psutil.Process(gateway_pid(process))
        url = f"http://127.0.0.1:{port}"
        asyncio.run(drive(url, body, token, args.clients, WARMUP_S))
        opened = asyncio.run(sessions(libpq))
        cpu = sum(gateway.cpu_times()[:2])
        started = time.monotonic()
        latencies = asyncio.run(drive(url, body, token, args.clients, args.seconds))
        wall = time.monotonic() - started
        cpu = sum(gateway.cpu_times()[:2]) - cpu
        opened = asyncio.run(sessions(libpq)) - opened - 1  # less the count's own session
        rss = gateway.memory_info().rss / 2**20
    finally:
        stop_gateway(process)
    n = len(latencies)
    return {
        "checkout": str(checkout),
        "requests": n,
        "rps": round(n / wall, 1),
        "median_ms": round(statistics.median(latencies), 1),
        "cpu_ms_per_request": round(1000 * cpu / n, 2),
        "sessions_opened": opened,
        "rss_mb": round(rss, 1),
        "load_avg": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--checkouts", nargs="+", type=Path, default=[REPO])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tenant", default="bench")
    args = parser.parse_args()

    state_dir = Path(os.environ.get("SWITCHBOARD_STATE_DIR", REPO / ".switchboard" / "perf"))
    services = start_services(
        state_dir, os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    )
    secret = "bench-load-" + secrets.token_hex(24)  # production mode refuses the dev secret
    env = {
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "SWITCHBOARD_MODE": "production",
        "SWITCHBOARD_RESPONSE_CACHE": "0",
        "SWITCHBOARD_JWT_SECRET": secret,
        "SWITCHBOARD_RATE_LIMIT_DASHBOARD": "1000000000",
    }
    settings = Settings(jwt_secret=secret)
    token = marketer_token(settings, args.tenant)
    body = dashboard_overview_body(OPERATION)
    print(
        "| round | checkout | req/s | median ms | CPU per request | sessions opened / requests "
        "| RSS | load |\n| ---: | --- | ---: | ---: | ---: | --- | ---: | ---: |"
    )
    try:
        for round_ in range(1, args.rounds + 1):
            for checkout in args.checkouts:
                r = measure(checkout.resolve(), env, body, token, args)
                print(
                    f"| {round_} | {r['checkout']} | {r['rps']} | {r['median_ms']} "
                    f"| {r['cpu_ms_per_request']} ms | {r['sessions_opened']} / {r['requests']} "
                    f"| {r['rss_mb']} MB | {r['load_avg']:.1f} |",
                    flush=True,
                )
    finally:
        services.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
