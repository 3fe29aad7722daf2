"""Benchmarks of the job system and the agent mutations (perf/README.md, "Agent work").

Stages, each against real servers (embedded PostgreSQL and a private Valkey under
SWITCHBOARD_STATE_DIR, default .switchboard/perf-jobs, database `switchboard_bench_jobs`):

1. pick-up latency, idle: one worker process (`python -m tasks.worker`, 8 slots); probe jobs
   (the `switchboard.probe` task, which only notes when it started) enqueued one at a time
   10-30 ms apart. Latency = the worker's claim time - the enqueue time (both ms, same
   machine), and enqueue → the task's first line.
2. pick-up latency under a backlog: 10,000 probe jobs at priorities 2-10 over 50 agents are
   enqueued, then priority-1 probes every 10 ms while the worker drains the backlog. Also
   the backlog's drain rate.
3. dispatch to first token: `switchboard serve --workers 1` (which starts its own worker);
   dispatchActivity mutations (marketer tokens, rotating over 15 tenants' copywriters), each
   followed by polling until the activity's firstTokenAt is set. Reported from database
   times: created → dispatchedAt (pick-up) and created → firstTokenAt; plus the client's
   wall time from sending the mutation to seeing the first token.
4. agent clients: 100 agents (15 tenants × 7 roles, less 5), each with a RUNNING activity,
   alternate reportActivityProgress (a 40-character chunk) and recordLlmCall:
   a. paced: one request per client every 500 ms (±20%), for `--paced-s` seconds;
   b. closed loop: every client back to back for `--closed-s` seconds: the throughput of
      one gateway process.
   Latency is the client's round trip; errors count HTTP errors, GraphQL errors and
   userErrors.

Run from the repository root, in the venv:

    python perf/bench_jobs.py            # ~3 minutes; results to perf/results/
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from taskiq.message import TaskiqMessage

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway import free_port  # noqa: E402
from stats import summary  # noqa: E402  (perf/stats.py, beside this script)

from domain.enums import AgentRole  # noqa: E402
from domain.ids import to_global_id  # noqa: E402
from domain.store.work import create_activity, create_deliverable  # noqa: E402
from switchboard.devdata.seed import quiet_tenants, seed_demo, stable_id  # noqa: E402
from switchboard.edge.auth import issue_token  # noqa: E402
from switchboard.infra.embedded import start_services  # noqa: E402
from switchboard.infra.migrate import upgrade_to_head  # noqa: E402
from switchboard.settings import Settings  # noqa: E402
from tasks.broker import JobStore, broker, now_ms  # noqa: E402
from tasks.jobs import PROBE  # noqa: E402

RESULTS = REPO / "perf" / "results"
TENANTS = [f"jobbench-{n:02d}" for n in range(15)]
ROLES = [role.value for role in AgentRole]
REPORT = """mutation($input: ActivityProgressInput!) { reportActivityProgress(input: $input) {
  activity { id status } userErrors { code } } }"""
RECORD = """mutation($input: RecordLlmCallInput!) { recordLlmCall(input: $input) {
  llmCall { id costUsd } userErrors { code } } }"""
DISPATCH = """mutation($input: DispatchActivityInput!) { dispatchActivity(input: $input) {
  activity { id } userErrors { code message } } }"""


# Data


async def prepare(database_url: str) -> dict[str, uuid.UUID]:
    """The 15 bench tenants (seeded once), with no spend caps and no queued work."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            existing = {
                r[0]: r[1]
                for r in (
                    await conn.execute(
                        text("SELECT slug, id FROM tenants WHERE slug LIKE 'jobbench-%'")
                    )
                ).all()
            }
            for slug in TENANTS:
                if slug not in existing:
                    (existing[slug],) = await seed_demo(conn, {slug: (slug, None)})
            ids = list(existing.values())
            await quiet_tenants(conn, ids)
            await conn.execute(
                text("UPDATE campaigns SET budget_cap_usd = NULL WHERE tenant_id = ANY(:t)"),
                {"t": ids},
            )
        return existing
    finally:
        await engine.dispose()


async def open_activities(database_url: str, tenants: dict[str, uuid.UUID]) -> list[Any]:
    """One QUEUED activity for each of 100 agents (not enqueued: their clients run them)."""
    engine = create_async_engine(database_url)
    made = []
    try:
        async with engine.begin() as conn:
            for slug in TENANTS:
                tenant_id = tenants[slug]
                campaign = (
                    await conn.execute(
                        text(
                            "SELECT id FROM campaigns WHERE tenant_id = :t AND status = 'ACTIVE' "
                            "ORDER BY created_at LIMIT 1"
                        ),
                        {"t": tenant_id},
                    )
                ).scalar_one()
                for role in ROLES:
                    if len(made) == 100:
                        break
                    deliverable = await create_deliverable(
                        conn, tenant_id, campaign, f"Bench {role}", "REPORT", None
                    )
                    row = await create_activity(
                        conn, tenant_id, deliverable["id"], role, 5, "Bench.", "MANUAL"
                    )
                    made.append((slug, tenant_id, role, row["id"]))
    finally:
        await engine.dispose()
    return made


# Stages 1 and 2


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tasks.worker"],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def probe_message(key: str, job_id: str) -> bytes:
    return broker.encode(
        TaskiqMessage(task_id=job_id, task_name=PROBE, labels={}, args=[], kwargs={"key": key})
    )


async def wait_until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not met")
        await asyncio.sleep(0.005)


async def queue_stages(redis: Redis, tenant_id: uuid.UUID, probes: int) -> dict[str, Any]:
    store = JobStore()
    agents = [uuid.uuid4().hex for _ in range(51)]
    for agent in agents:
        await store.configure(redis, agent, tenant_id.hex, 8, paused=False)
    probe_agent, backlog_agents = agents[0], agents[1:]
    key = f"bench:probe:{uuid.uuid4().hex}"

    async def run_probe(priority: int) -> tuple[float, float]:
        job = uuid.uuid4().hex
        await store.enqueue(
            redis,
            job_id=job,
            agent_id=probe_agent,
            tenant_id=tenant_id.hex,
            priority=priority,
            message=probe_message(key, job),
        )

        async def seen() -> bool:
            return bool(await redis.hexists(key, job))

        await wait_until(seen, 30)
        enqueued, claimed, started = (int(v) for v in (await redis.hget(key, job)).split(b","))
        return claimed - enqueued, started - enqueued

    # 1. idle
    idle_claim, idle_start = [], []
    for _ in range(probes):
        claim, start = await run_probe(1)
        idle_claim.append(claim)
        idle_start.append(start)
        await asyncio.sleep(random.uniform(0.01, 0.03))

    # 2. backlog of 10,000
    backlog_key = f"bench:backlog:{uuid.uuid4().hex}"
    filled = time.perf_counter()
    for start in range(0, 10_000, 500):
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(start, start + 500):
                job = uuid.uuid4().hex
                message = probe_message(backlog_key, job)
                pipe.evalsha(
                    _enqueue_sha(),
                    0,
                    store.prefix,
                    job,
                    backlog_agents[n % 50],
                    tenant_id.hex,
                    2 + n % 9,
                    message,
                    "",
                    now_ms(),
                )
            await pipe.execute()
    fill_s = time.perf_counter() - filled
    drain_started = time.perf_counter()
    backlog_claim, backlog_start, waiting_at_probe = [], [], []
    while await redis.hlen(backlog_key) < 10_000 - 200:
        waiting_at_probe.append(10_000 - await redis.hlen(backlog_key))
        claim, start = await run_probe(1)
        backlog_claim.append(claim)
        backlog_start.append(start)
        await asyncio.sleep(0.01)

    async def drained() -> bool:
        return await redis.hlen(backlog_key) >= 10_000

    await wait_until(drained, 120)
    drain_s = time.perf_counter() - drain_started
    return {
        "idle_claim_ms": summary(idle_claim),
        "idle_start_ms": summary(idle_start),
        "backlog_fill_s": round(fill_s, 2),
        "backlog_drain_s": round(drain_s, 2),
        "backlog_jobs_per_s": round(10_000 / drain_s),
        "backlog_waiting_at_probes": summary([float(w) for w in waiting_at_probe]),
        "backlog_claim_ms": summary(backlog_claim),
        "backlog_start_ms": summary(backlog_start),
    }


def _enqueue_sha() -> str:
    from tasks.broker import ENQUEUE

    return ENQUEUE.sha


# Stages 3 and 4


async def dispatch_stage(
    http: httpx.AsyncClient,
    settings: Settings,
    database_url: str,
    tenants: dict[str, uuid.UUID],
    count: int,
) -> dict[str, Any]:
    engine = create_async_engine(database_url)
    targets = []
    try:
        async with engine.connect() as conn:
            for slug in TENANTS:
                deliverable = (
                    await conn.execute(
                        text(
                            "SELECT d.id FROM deliverables d JOIN campaigns m ON m.id = "
                            "d.campaign_id WHERE d.tenant_id = :t AND m.status = 'ACTIVE' AND "
                            "d.status IN ('PLANNED', 'IN_PROGRESS', 'IN_REVIEW') "
                            "ORDER BY d.created_at LIMIT 1"
                        ),
                        {"t": tenants[slug]},
                    )
                ).scalar_one()
                user = to_global_id("User", stable_id("user", f"marketer@{slug}.example"))
                token = issue_token(
                    settings, user, to_global_id("Tenant", tenants[slug]), "dashboard"
                )
                targets.append((token, to_global_id("Deliverable", deliverable)))
        wall, ids = [], []
        for n in range(count):
            token, deliverable = targets[n % len(targets)]
            sent = time.perf_counter()
            response = await http.post(
                "/graphql",
                json={
                    "query": DISPATCH,
                    "variables": {
                        "input": {"deliverableId": deliverable, "role": "COPYWRITER", "priority": 3}
                    },
                },
                headers={"authorization": f"Bearer {token}"},
            )
            payload = response.json()["data"]["dispatchActivity"]
            assert not payload["userErrors"], payload
            activity = uuid.UUID(hex=payload["activity"]["id"].partition("_")[2])
            ids.append(activity)

            async def first_token(activity: uuid.UUID = activity) -> bool:
                async with engine.connect() as conn:
                    return bool(
                        (
                            await conn.execute(
                                text("SELECT first_token_at FROM activities WHERE id = :id"),
                                {"id": activity},
                            )
                        ).scalar()
                    )

            await wait_until(first_token, 30)
            wall.append((time.perf_counter() - sent) * 1000)
            # Runs last about 3 s (120 tokens × 25 ms); a dispatch every ~0.7 s keeps about
            # 4-5 running, under the worker's 8 slots, so this measures an idle slot's
            # pick-up rather than waiting for one.
            await asyncio.sleep(0.6)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT extract(epoch FROM dispatched_at - created_at) * 1000, "
                        "extract(epoch FROM first_token_at - created_at) * 1000 "
                        "FROM activities WHERE id = ANY(:ids)"
                    ),
                    {"ids": ids},
                )
            ).all()
    finally:
        await engine.dispose()
    return {
        "pickup_ms (created → dispatchedAt)": summary([float(r[0]) for r in rows]),
        "first_token_ms (created → firstTokenAt)": summary([float(r[1]) for r in rows]),
        "client_wall_ms (mutation sent → first token seen)": summary(wall),
    }


async def agent_clients(
    base_url: str,
    settings: Settings,
    activities: list[Any],
    seconds: float,
    pace_s: float | None,
) -> dict[str, Any]:
    """Each client alternates a 40-character chunk and an LLM call for its activity, over
    aiohttp (cheaper per request than httpx, which leaves more of this 2-core machine to
    the gateway)."""
    import aiohttp
    import orjson

    latencies: list[float] = []
    errors: list[str] = []
    counts = {"report": 0, "record": 0}
    deadline = time.monotonic() + seconds

    async def client(
        http: aiohttp.ClientSession, slug: str, tenant: uuid.UUID, role: str, activity: uuid.UUID
    ) -> None:
        token = issue_token(
            settings,
            to_global_id("Agent", stable_id(slug, "agent", role)),
            to_global_id("Tenant", tenant),
            "agent",
        )
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        gid = to_global_id("Activity", activity)
        chunk = {"activityId": gid, "chunk": "Forty characters of streamed agent text."}
        call = {
            "activityId": gid,
            "provider": "ollama",
            "model": "llama-3.1-70b",
            "inputTokens": 900,
            "outputTokens": 120,
            "costUsd": "0.000612",
            "latencyMs": 800,
        }
        bodies = [
            ("report", orjson.dumps({"query": REPORT, "variables": {"input": chunk}})),
            ("record", orjson.dumps({"query": RECORD, "variables": {"input": call}})),
        ]
        fields = {"report": "reportActivityProgress", "record": "recordLlmCall"}
        n = 0
        await asyncio.sleep(random.uniform(0, pace_s or 0.05))
        while time.monotonic() < deadline:
            kind, body = bodies[n % 2]
            sent = time.perf_counter()
            try:
                async with http.post("/graphql", data=body, headers=headers) as response:
                    raw = await response.read()
                    status = response.status
                latencies.append((time.perf_counter() - sent) * 1000)
                counts[kind] += 1
                data = orjson.loads(raw)
                if status != 200 or "errors" in data:
                    errors.append(f"{status} {raw[:200]!r}")
                elif data["data"][fields[kind]]["userErrors"]:
                    errors.append(str(data["data"][fields[kind]]["userErrors"]))
            except aiohttp.ClientError as error:
                errors.append(repr(error))
            n += 1
            if pace_s:
                wait = pace_s * random.uniform(0.8, 1.2) - (time.perf_counter() - sent)
                await asyncio.sleep(max(0.0, wait))

    connector = aiohttp.TCPConnector(limit=len(activities))
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http, *a) for a in activities))
        took = time.perf_counter() - started
    return {
        "clients": len(activities),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / took),
        "reportActivityProgress": counts["report"],
        "recordLlmCall": counts["record"],
        "latency_ms": summary(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
    }


async def start_agent_runs(base_url: str, settings: Settings, activities: list[Any]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for slug, tenant, role, activity in activities:
            token = issue_token(
                settings,
                to_global_id("Agent", stable_id(slug, "agent", role)),
                to_global_id("Tenant", tenant),
                "agent",
            )
            response = await http.post(
                "/graphql",
                json={
                    "query": REPORT,
                    "variables": {
                        "input": {
                            "activityId": to_global_id("Activity", activity),
                            "status": "RUNNING",
                        }
                    },
                },
                headers={"authorization": f"Bearer {token}"},
            )
            assert not response.json()["data"]["reportActivityProgress"]["userErrors"]


# Main


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    state_dir = Path(os.environ.get("SWITCHBOARD_STATE_DIR", REPO / ".switchboard/perf-jobs"))
    services = start_services(
        state_dir, None, None, database_name="switchboard_bench_jobs", private_redis=True
    )
    env = {
        **os.environ,
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "SWITCHBOARD_STATE_DIR": str(state_dir),
    }
    results: dict[str, Any] = {"at": dt.datetime.now(dt.UTC).isoformat()}
    settings = Settings.from_env()
    gateway = None
    try:
        await asyncio.to_thread(upgrade_to_head, services.database_url)
        tenants = await prepare(services.database_url)
        redis = Redis.from_url(services.redis_url)
        await redis.flushdb()

        if "queue" in args.stages:
            print("stages 1-2: queue pick-up (probe jobs, one worker, 8 slots)", flush=True)
            worker = start_worker(
                {
                    **env,
                    "SWITCHBOARD_WORKER_TENANTS": str(tenants[TENANTS[0]]),
                    "SWITCHBOARD_WORKER_SCHEDULER": "0",
                },
                state_dir / "bench-worker.log",
            )
            try:
                await asyncio.sleep(3)  # start-up; the first probes would otherwise wait
                results["queue"] = await queue_stages(redis, tenants[TENANTS[0]], args.probes)
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(30)
            print(json.dumps(results["queue"], indent=1), flush=True)
            await redis.flushdb()
        if not {"dispatch", "agents"} & set(args.stages):
            return results

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        gateway = subprocess.Popen(
            [
                *(sys.executable, "-m", "switchboard.cli", "serve", "--port", str(port)),
                *("--workers", str(args.gateway_workers)),
            ],
            cwd=REPO,
            env=env,
            stdout=(state_dir / "bench-gateway.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:

            async def healthy() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until(healthy, 120)
            await asyncio.sleep(3)  # its worker starts beside it
            if "dispatch" in args.stages:
                print("stage 3: dispatch to first token (simulated runtime)", flush=True)
                results["dispatch"] = await dispatch_stage(
                    http, settings, services.database_url, tenants, args.dispatches
                )
                print(json.dumps(results["dispatch"], indent=1), flush=True)

        if "agents" in args.stages:
            activities = (await open_activities(services.database_url, tenants))[: args.clients]
            await start_agent_runs(base_url, settings, activities)
            print(f"stage 4a: {len(activities)} clients, a request every {args.pace_s} s each")
            results["agents_paced"] = await agent_clients(
                base_url, settings, activities, args.paced_s, args.pace_s
            )
            results["agents_paced"]["pace_s"] = args.pace_s
            print(json.dumps(results["agents_paced"], indent=1), flush=True)
            await asyncio.sleep(2)
            print(f"stage 4b: {len(activities)} agent clients, back to back", flush=True)
            results["agents_closed"] = await agent_clients(
                base_url, settings, activities, args.closed_s, None
            )
            print(json.dumps(results["agents_closed"], indent=1), flush=True)
        results["gateway_workers"] = args.gateway_workers
        await redis.aclose()
    finally:
        if gateway is not None:
            gateway.send_signal(signal.SIGINT)
            try:
                gateway.wait(60)
            except subprocess.TimeoutExpired:
                gateway.kill()
        services.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=300, help="idle pick-up probes")
    parser.add_argument("--dispatches", type=int, default=40)
    parser.add_argument("--paced-s", type=float, default=20.0)
    parser.add_argument("--closed-s", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=100, help="agent clients (stage 4)")
    parser.add_argument("--pace-s", type=float, default=0.5, help="stage 4a: s between requests")
    parser.add_argument("--gateway-workers", type=int, default=1, help="gateway processes")
    parser.add_argument(
        "--stages",
        nargs="+",
        default=["queue", "dispatch", "agents"],
        choices=["queue", "dispatch", "agents"],
    )
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_jobs-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
