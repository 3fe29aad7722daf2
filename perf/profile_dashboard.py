"""Where a DashboardOverview request's CPU goes, planned executor against graphql-core.

This script owns the in-process profile of issue 14. It starts the embedded servers under
SWITCHBOARD_STATE_DIR (default .switchboard/perf-executor), seeds the demo data if the
database is empty, and sends DashboardOverview as acme's marketer (`--data demo`) or
bench's (`--data bench`, after `switchboard seed --bench` with the same state directory)
to the gateway in process (httpx's ASGI transport: no sockets), one request at a time:

1. CPU per request (process time) for `--requests` requests with the planned executor and
   as many with graphql-core (`OperationExecutor.enabled = False`), interleaved in
   batches of 10; medians reported, and the responses checked equal;
2. a cProfile of `--requests` planned requests, its own time summed by package
   (graphql-core, asyncio, SQLAlchemy, asyncpg, loaders, Strawberry, the executor, ...),
   then the top functions.

Run (from the repository root, in the venv):

    python perf/profile_dashboard.py               # --requests 200 --data demo
    SWITCHBOARD_STATE_DIR=.switchboard/perf-executor switchboard seed --bench
    python perf/profile_dashboard.py --data bench
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from gateway import dashboard_overview_body, marketer_token  # perf/gateway.py, beside this script
from sqlalchemy.ext.asyncio import create_async_engine

from switchboard.app import create_app
from switchboard.devdata.seed import database_is_empty, seed_demo
from switchboard.infra.embedded import start_services
from switchboard.infra.migrate import upgrade_to_head
from switchboard.settings import Settings

REPO = Path(__file__).resolve().parent.parent
OPERATION = REPO / "contract/operations/dashboard/DashboardOverview.graphql"
BUCKETS = (
    ("graphql-core", "/graphql/"),
    ("executor", "/switchboard/execution/"),
    ("asyncio", "/asyncio/"),
    ("SQLAlchemy", "/sqlalchemy/"),
    ("asyncpg", "/asyncpg/"),
    ("aiodataloader", "/aiodataloader/"),
    ("loaders", "/loaders/"),
    ("schema (resolvers)", "/schema/"),
    ("resolvers", "/resolvers/"),
    ("Strawberry", "/strawberry/"),
    ("orjson / json", "json"),
    ("starlette/httpx", "/starlette/"),
    ("starlette/httpx", "/httpx/"),
    ("observability", "/switchboard/observability/"),
    ("switchboard (other)", "/switchboard/"),
)


async def prepare(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            if await database_is_empty(conn):
                await seed_demo(conn)
    finally:
        await engine.dispose()


def bucket(filename: str) -> str:
    for name, marker in BUCKETS:
        if marker in filename:
            return name
    return "other" if filename.startswith("/") else "builtins (C)"


async def main(requests: int, slug: str) -> None:
    state_dir = Path(os.environ.get("SWITCHBOARD_STATE_DIR", REPO / ".switchboard/perf-executor"))
    running = start_services(state_dir, os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL"))
    try:
        await prepare(running.database_url)
        settings = Settings.from_env(
            database_url=running.database_url,
            redis_url=running.redis_url,
            rate_limit=False,
            log_level="WARNING",
        )
        app = create_app(settings)
        token = marketer_token(settings, slug)
        body = dashboard_overview_body(OPERATION)
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        async with LifespanManager(app):
            execution = app.state.graphql.execution
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                statements: dict[bool, set[str]] = {True: set(), False: set()}

                async def send() -> tuple[float, bytes]:
                    started = time.process_time()
                    response = await client.post("/graphql", content=body, headers=headers)
                    assert response.status_code == 200, response.text
                    statements[execution.enabled].add(response.headers["x-sql-statements"])
                    return time.process_time() - started, response.content

                for enabled in (True, False) * 5:  # warm-up
                    execution.enabled = enabled
                    await send()
                gc.collect()
                gc.freeze()
                cpu: dict[bool, list[float]] = {True: [], False: []}
                bodies: dict[bool, bytes] = {}
                for _ in range(requests // 10):
                    for enabled in (True, False):
                        execution.enabled = enabled
                        for _ in range(10):
                            spent, bodies[enabled] = await send()
                            cpu[enabled].append(spent)
                assert bodies[True] == bodies[False], "the two executors answered differently"
                size = len(bodies[True])
                print(f"DashboardOverview, {slug}, {size} bytes, {requests} requests each")
                for enabled, label in ((False, "graphql-core"), (True, "planned")):
                    median = statistics.median(cpu[enabled]) * 1000
                    p90 = statistics.quantiles(cpu[enabled], n=10)[-1] * 1000
                    print(
                        f"  {label:13} CPU per request: median {median:.2f} ms, p90 {p90:.2f} ms,"
                        f" SQL statements {sorted(statements[enabled])}"
                    )

                execution.enabled = True
                profile = cProfile.Profile()
                profile.enable()
                for _ in range(requests):
                    await send()
                profile.disable()
    finally:
        running.stop()

    stats = pstats.Stats(profile)
    own: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        own[bucket(filename)] += tottime
        total += tottime
    print(f"\ncProfile of {requests} planned requests: own time by package")
    for name, seconds in sorted(own.items(), key=lambda item: -item[1]):
        print(f"  {name:22} {seconds / requests * 1000:7.2f} ms/request  {seconds / total:6.1%}")
    print()
    stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--data", choices=("demo", "bench"), default="demo")
    args: Any = parser.parse_args()
    asyncio.run(main(args.requests, "acme" if args.data == "demo" else "bench"))
