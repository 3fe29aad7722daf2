"""Instructions per DashboardOverview request, counted by callgrind, for one checkout or several.

On a shared machine, CPU time per request moves by ±20% with other people's load; the
number of instructions a request executes barely does (within about 3% run to run: the
event loop's passes while statements are out still depend on timing). So this script
compares code, not machines: for each `--checkouts` folder (default:
this one) it runs the gateway's app in process (httpx's ASGI transport, no sockets, no
compression) under `valgrind --tool=callgrind --instr-atstart=no`, sends DashboardOverview
as the tenant's marketer `--warmup` times uninstrumented, then counts the instructions of
the next `--requests` requests (the app, the loaders, asyncpg, and the in-process client
alike for every checkout), and prints instructions per request and the ratio to the first
checkout. Every answer must be a 200 without errors, and all checkouts' bodies equal.

What it does not count: the kernel's work (a statement's socket write and the wake-up of
its PostgreSQL backend cost tens of microseconds each, which fewer statements save), and
time spent waiting. Report it beside a load benchmark (`bench_load.py`), not instead.

    source /tmp/peer-pg-exec/pgsb/run/anchor.env     # or any database with the bench data
    git archive HEAD~3 | tar -x -C /tmp/before
    python perf/count_instructions.py --checkouts /tmp/before .

Needs valgrind (Debian's package). The response cache is off, as in the other executor
benchmarks, and the database and Valkey are those of DATABASE_URL / REDIS_URL (else the
embedded ones of SWITCHBOARD_STATE_DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OPERATION = REPO / "contract/operations/dashboard/DashboardOverview.graphql"


def child(args: argparse.Namespace) -> None:
    """In the checkout's own code: warm up, then count `--requests` requests."""
    sys.path.insert(0, str(Path.cwd()))
    import asyncio
    import gc

    import httpx
    from asgi_lifespan import LifespanManager
    from gateway import dashboard_overview_body, marketer_token  # perf/gateway.py

    from switchboard.app import create_app
    from switchboard.settings import Settings

    def instrument(on: bool) -> None:
        command = ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())]
        subprocess.run(command, check=True, capture_output=True)

    async def run() -> dict[str, Any]:
        settings = Settings.from_env(
            database_url=os.environ["DATABASE_URL"],
            redis_url=os.environ["REDIS_URL"],
            rate_limit=False,
            response_cache=False,
            log_level="WARNING",
        )
        app = create_app(settings)
        token = marketer_token(settings, args.tenant)
        body = dashboard_overview_body(OPERATION)
        headers = {
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
            "accept-encoding": "identity",  # as the load benchmarks' clients send
        }
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:

                async def send() -> httpx.Response:
                    response = await client.post("/graphql", content=body, headers=headers)
                    if response.status_code != 200 or b'"errors"' in response.content:
                        raise SystemExit(f"bad answer: {response.status_code} {response.text}")
                    return response

                for _ in range(args.warmup):
                    await send()
                # The cyclic collector's passes fall wherever allocation counts say: frozen
                # survivors make them small and alike in every checkout's counted requests.
                gc.collect()
                gc.freeze()
                instrument(True)
                for _ in range(args.requests):
                    response = await send()
                instrument(False)
        return {
            "statements": response.headers.get("x-sql-statements"),
            "bytes": len(response.content),
            "body_digest": __import__("hashlib").sha256(response.content).hexdigest(),
        }

    print("RESULT " + json.dumps(asyncio.run(run())), flush=True)


def count(checkout: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={folder}/callgrind.out",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            f"--requests={args.requests}",
            f"--warmup={args.warmup}",
            f"--tenant={args.tenant}",
        ]
        done = subprocess.run(
            command, cwd=checkout, env={**env, "PYTHONPATH": str(checkout)}, capture_output=True
        )
    out, err = done.stdout.decode(), done.stderr.decode()
    result = re.search(r"^RESULT (.*)$", out, re.M)
    collected = re.search(r"Collected : (\d+)", err)
    if done.returncode != 0 or result is None or collected is None:
        raise SystemExit(f"{checkout}: the counted run failed:\n{out[-2000:]}\n{err[-2000:]}")
    return {
        "checkout": str(checkout),
        "instructions_per_request": int(collected.group(1)) / args.requests,
        **json.loads(result.group(1)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--checkouts", nargs="+", type=Path, default=[REPO])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--tenant", default="bench")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    sys.path.insert(0, str(REPO))
    from switchboard.infra.embedded import start_services

    state_dir = Path(os.environ.get("SWITCHBOARD_STATE_DIR", REPO / ".switchboard" / "perf"))
    services = start_services(
        state_dir, os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    )
    env = {**os.environ, "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
    results = []
    try:
        print(
            "| checkout | instructions per request | ratio | SQL statements | bytes |\n"
            "| --- | ---: | ---: | ---: | ---: |"
        )
        for checkout in args.checkouts:
            r = count(checkout.resolve(), args, env)
            results.append(r)
            ratio = r["instructions_per_request"] / results[0]["instructions_per_request"]
            print(
                f"| {r['checkout']} | {r['instructions_per_request'] / 1e6:.2f} M | {ratio:.3f} "
                f"| {r['statements']} | {r['bytes']:,} |",
                flush=True,
            )
    finally:
        services.stop()
    if len({r["body_digest"] for r in results}) > 1:
        print("the checkouts answered differently", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
