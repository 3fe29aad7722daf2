"""Faults (issue 13): how `switchboard serve` rides out outages under a steady load.

One real `switchboard serve` (one gateway process, one job worker, development mode so the
response cache is on, rate limit off) runs against a PostgreSQL and a Valkey this script
starts itself (tests/support/faults.py's DedicatedPostgres and DedicatedValkey), so it can
stop and start them. A steady load runs throughout: 20 requests/s (a small dashboard query
and MobileHome by persisted id with a mobile token, alternately, open loop) and one
dispatchActivity every 200 ms on a deliverable of its own (the bench tenant's six agents
that are not the planner, in turn). Then, one after the other:

1. quiet baseline (15 s): dispatch → AWAITING_APPROVAL without a fault;
2. PostgreSQL restarted: `pg_ctl stop -m fast`, down 3 s, started again;
3. Valkey restarted: SHUTDOWN (data saved), down 3 s, started again;
4. the job worker SIGKILLed while a job runs (serve starts another; that job runs again
   once its lease, 30 s by default, has run out);
5. SIGTERM to serve: time until no process of its tree is left; then serve is started again
   on the same servers, to see that the jobs it handed back finish once.

For each fault (its window: from the fault to the server back, "back" being the server's
own "ready" log line, or the new worker's "worker ready", plus 10 s of load after it):
- gateway recovery: server back → the first 200 received after it;
- worker recovery: server back → the first job claimed (`dispatched_at`) and the first
  approval requested after it;
- answers to requests sent while the server was down, by HTTP status;
- jobs created in the window: delayed (dispatch → AWAITING_APPROVAL above the baseline's
  p99 + 1 s, and by how much over the baseline's p50), lost (not finished by the deadline),
  doubled (two finishing log lines, or two drafts in one output);
- log lines with a timestamp from the fault to back + 10 s, per process (by logger:
  `tasks.*`/`taskiq.*` = job worker, `switchboard.processes.supervisor` = serve, the rest =
  gateway), without the routine ones (access lines, one "activity …: … after N turns" per
  job), which are counted apart.
Separately, before the faults and without the load: the cached mobileHome's lag behind a
worker's change, 20 times (as tests/e2e/test_freshness.py does, over HTTP): from the moment
the activity is seen AWAITING_APPROVAL in the database to the first mobileHome whose
pendingApprovalCount matches the database.

Run from the repository root, in the venv (about 5 minutes):

    python perf/bench_faults.py            # results to perf/results/bench-faults-*.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway import start_gateway  # noqa: E402  (perf/gateway.py, beside this script)
from stats import summary  # noqa: E402  (perf/stats.py)

from domain.ids import to_global_id  # noqa: E402
from domain.store.work import create_deliverable  # noqa: E402
from switchboard.devdata.seed import stable_id  # noqa: E402
from switchboard.edge.auth import issue_token  # noqa: E402
from switchboard.settings import Settings  # noqa: E402
from tests.support.edge import MOBILE_HOME_ID, persisted, server_timing  # noqa: E402
from tests.support.faults import DedicatedPostgres, DedicatedValkey  # noqa: E402
from tests.support.jobs import Tenant, enqueue, fresh_tenant, new_work, wait_for  # noqa: E402
from tests.support.processes import alive  # noqa: E402

RESULTS = REPO / "perf" / "results"
SETTINGS = Settings(jwt_secret="bench-faults-secret-0123456789abcdef0123456789")
ROLES = ["COPYWRITER", "SEO_SPECIALIST", "SOCIAL_MEDIA_MANAGER"]
ROLES += ["PAID_ADS_MANAGER", "DATA_ANALYST", "CONTENT_RESEARCHER"]
SMALL = {"query": "{ viewer { displayName } tenant { name } }"}
HOME = {"extensions": persisted(MOBILE_HOME_ID)}
DISPATCH = """mutation($input: DispatchActivityInput!) { dispatchActivity(input: $input) {
  activity { id } userErrors { code message } } }"""
SERVE_ENV = {
    "SWITCHBOARD_MODE": "development",  # the response cache on
    "SWITCHBOARD_RATE_LIMIT": "0",
    "SWITCHBOARD_JWT_SECRET": SETTINGS.jwt_secret,
    "SWITCHBOARD_SIM_TOKEN_DELAY_MS": "5",  # a run of ~0.5 s: two turns of 40 tokens
    "SWITCHBOARD_SIM_TOKENS_PER_TURN": "40",
}
FINISHED = re.compile(r"^activity ([0-9a-f-]{36}): \w+ after \d+ turns$")
AFTER_BACK_S = 10.0  # load kept running after a server is back, and logs counted until then
BASELINE_S = 15.0
TARGETS = {
    "recovery_s": 2.0,
    "lost": 0,
    "doubled": 0,
    "log_lines": 10,
    "stop_s": 10.0,
    "cache_lag_s": 1.0,
}


def now() -> float:
    return time.time()  # wall clock: compared with the servers' own log timestamps


# The servers and serve


@dataclass
class Serve:
    """A running `switchboard serve`, its log and where it answers."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def job_worker(self) -> psutil.Process:
        for child in psutil.Process(self.process.pid).children():
            with contextlib.suppress(psutil.Error):
                if child.cmdline()[1:4] == ["-m", "switchboard.cli", "worker"]:
                    return child
        raise RuntimeError("serve runs no job worker")


async def start_serve(state_dir: Path, log: Path, database_url: str, redis_url: str) -> Serve:
    """serve on the bench's own servers; waits for the gateway and the job worker."""
    env = {**SERVE_ENV, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    process, port = await asyncio.to_thread(start_gateway, state_dir, log, env)
    serve = Serve(process, port, log)

    async def worker_ready() -> bool:
        return "worker ready" in serve.output()

    await wait_for(worker_ready, timeout=60, interval=0.1)
    return serve


@dataclass
class Bench:
    pg: DedicatedPostgres
    valkey: DedicatedValkey
    database_url: str
    tenant: Tenant
    state_dir: Path
    serve: Serve
    logs: list[Path] = field(default_factory=list)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """One query on a connection of its own (the server may have restarted since)."""
        conn = await asyncpg.connect(self.pg.libpq_url("switchboard"))
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()


def token(slug: str, audience: str) -> str:
    user = to_global_id("User", stable_id("user", f"marketer@{slug}.example"))
    return issue_token(SETTINGS, user, to_global_id("Tenant", stable_id(slug, "tenant")), audience)


async def prepare_tenant(database_url: str, deliverables: int) -> tuple[Tenant, list[str]]:
    """A fresh tenant with no budget caps and `deliverables` PLANNED deliverables (ids)."""
    tenant = await fresh_tenant(database_url, "faults")
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await conn.execute(
            "UPDATE campaigns SET budget_cap_usd = NULL WHERE tenant_id = $1", tenant.id
        )
        await conn.execute(
            "UPDATE tenants SET monthly_spend_cap_usd = NULL WHERE id = $1", tenant.id
        )
        campaign = await conn.fetchval(
            "SELECT id FROM campaigns WHERE tenant_id = $1 AND status = 'ACTIVE' "
            "ORDER BY created_at LIMIT 1",
            tenant.id,
        )
    finally:
        await conn.close()
    engine = create_async_engine(database_url)
    ids = []
    try:
        async with engine.begin() as db:
            for n in range(deliverables):
                row = await create_deliverable(
                    db, tenant.id, campaign, f"Fault {n}", "BLOG_POST", None
                )
                ids.append(to_global_id("Deliverable", row["id"]))
    finally:
        await engine.dispose()
    return tenant, ids


# The load


@dataclass
class Answer:
    kind: str  # "small", "home" or "dispatch"
    sent: float
    done: float
    status: int | str  # the HTTP status, or the transport error's name


class Load:
    """The steady background load: `rps` reads a second and a dispatch every `every_s`."""

    def __init__(self, url: str, slug: str, deliverables: list[str], rps: float, every_s: float):
        self.url, self.rps, self.every_s = url, rps, every_s
        self.dashboard = {"authorization": f"Bearer {token(slug, 'dashboard')}"}
        self.mobile = {"authorization": f"Bearer {token(slug, 'mobile')}"}
        self.deliverables = iter(deliverables)
        self.roles = itertools.cycle(ROLES)
        self.answers: list[Answer] = []
        self.dispatching = True
        self.tasks: set[asyncio.Task[None]] = set()
        self.http = httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=200))

    async def request(self, kind: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        sent = now()
        try:
            response = await self.http.post(f"{self.url}/graphql", json=body, headers=headers)
            status: int | str = response.status_code
        except httpx.TransportError as error:
            status = type(error).__name__
        self.answers.append(Answer(kind, sent, now(), status))

    async def dispatch(self) -> None:
        deliverable = next(self.deliverables, None)
        if deliverable is None:
            return
        variables = {"input": {"deliverableId": deliverable, "role": next(self.roles)}}
        body = {"query": DISPATCH, "variables": variables}
        await self.request("dispatch", body, self.dashboard)

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        started = time.monotonic()
        reads, dispatches = 0, 0
        while True:
            elapsed = time.monotonic() - started
            while reads <= elapsed * self.rps:
                if reads % 2:
                    self.spawn(self.request("home", HOME, self.mobile))
                else:
                    self.spawn(self.request("small", SMALL, self.dashboard))
                reads += 1
            while dispatches <= elapsed / self.every_s:
                if self.dispatching:
                    self.spawn(self.dispatch())
                dispatches += 1
            await asyncio.sleep(0.01)

    def between(self, start: float, end: float, kind: str | None = None) -> list[Answer]:
        return [
            a for a in self.answers if start <= a.sent < end and (kind is None or a.kind == kind)
        ]


# Jobs and logs


async def jobs_created(bench: Bench, start: float, end: float) -> list[asyncpg.Record]:
    """The bench tenant's activities created in [start, end), with how each ended."""
    return await bench.fetch(
        "SELECT a.id, a.status, extract(epoch FROM a.created_at)::float8 AS created, "
        "extract(epoch FROM a.dispatched_at)::float8 AS claimed, "
        "extract(epoch FROM p.requested_at)::float8 AS approved, "
        "(length(coalesce(a.output, '')) - length(replace(coalesce(a.output, ''), "
        "'Draft of the', ''))) / length('Draft of the') AS drafts "
        "FROM activities a LEFT JOIN approvals p ON p.activity_id = a.id "
        "WHERE a.tenant_id = $1 AND a.wake_reason = 'MANUAL' "
        "AND a.created_at >= to_timestamp($2) AND a.created_at < to_timestamp($3)",
        bench.tenant.id,
        start,
        end,
    )


async def settle(bench: Bench, start: float, end: float, deadline_s: float) -> list[Any]:
    """Wait until every job created in [start, end) awaits approval, or the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        rows = await jobs_created(bench, start, end)
        if all(r["status"] == "AWAITING_APPROVAL" for r in rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.5)


def log_entries(bench: Bench) -> list[dict[str, Any]]:
    """Every JSON line serve and its children logged, in every serve log of this run."""
    entries = []
    for path in bench.logs:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    entry["at"] = dt.datetime.fromisoformat(entry["time"]).timestamp()
                    entries.append(entry)
    return entries


def process_of(logger: str) -> str:
    if logger.startswith(("tasks", "taskiq")):
        return "job_worker"
    if logger.startswith(("switchboard.processes.supervisor", "switchboard.cli")):
        return "serve"
    return "gateway"


def routine(entry: dict[str, Any]) -> bool:
    return entry["logger"] == "uvicorn.access" or bool(FINISHED.match(entry["message"]))


def finishes(bench: Bench) -> Counter[str]:
    """How many times each activity's run finished, by the worker's one line per run."""
    counted: Counter[str] = Counter()
    for entry in log_entries(bench):
        if found := FINISHED.match(entry["message"]):
            counted[found[1]] += 1
    return counted


def log_lines(bench: Bench, start: float, end: float) -> dict[str, Any]:
    """Lines logged in [start, end), per process: outage-related apart from routine."""
    lines = [e for e in log_entries(bench) if start <= e["at"] < end]
    outage = [e for e in lines if not routine(e)]
    per_process = Counter(process_of(e["logger"]) for e in outage)
    return {
        "per_process": {p: per_process.get(p, 0) for p in ("serve", "gateway", "job_worker")},
        "routine": len(lines) - len(outage),
        "by_logger": dict(Counter(e["logger"] for e in outage)),
        "messages": [f"{e['logger']}: {e['message'][:160]}" for e in outage[:30]],
    }


# One phase


def job_report(rows: list[Any], finished: Counter[str], baseline: dict[str, float]) -> dict:
    done = [r for r in rows if r["approved"] is not None]
    latencies = [r["approved"] - r["created"] for r in done]
    limit = baseline["p99"] + 1.0 if baseline else float("inf")
    delays = [latency - baseline.get("p50", 0.0) for latency in latencies if latency > limit]
    doubled = [r for r in rows if finished[str(r["id"])] > 1 or (r["drafts"] or 0) > 1]
    return {
        "created": len(rows),
        "finished": len(done),
        "latency_s": summary(latencies) if latencies else None,
        "delayed": len(delays),
        "delay_over_baseline_p50_s": summary(delays) if delays else None,
        "lost": len(rows) - len(done),
        "lost_statuses": dict(Counter(r["status"] for r in rows if r["approved"] is None)),
        "doubled": len(doubled),
    }


def recovery(load: Load, rows: list[Any], back: float) -> dict[str, float | None]:
    ok = [
        a.done for a in load.answers if a.status == 200 and a.done >= back and a.kind != "dispatch"
    ]
    claimed = [r["claimed"] for r in rows if r["claimed"] and r["claimed"] >= back]
    approved = [r["approved"] for r in rows if r["approved"] and r["approved"] >= back]

    def after(times: list[float]) -> float | None:
        return round(min(times) - back, 2) if times else None

    return {
        "gateway_first_200_s": after(ok),
        "worker_first_claim_s": after(claimed),
        "worker_first_finish_s": after(approved),
    }


async def phase(bench: Bench, load: Load, fault: Any, baseline: dict, deadline_s: float) -> dict:
    """Run `fault` under the load; its window; then the jobs, answers and logs of it."""
    print(f"{fault.__name__}…", file=sys.stderr, flush=True)
    began = now()
    window = await fault(bench, load)
    await asyncio.sleep(AFTER_BACK_S)
    end = now()
    load.dispatching = False  # the reads go on; no new jobs until these have finished
    try:
        rows = await settle(bench, began, end, deadline_s)
    finally:
        load.dispatching = True
    answers = load.between(window["fault_at"], window["back"])
    return {
        "fault": fault.__name__,
        **window,
        "down_s": round(window["back"] - window["fault_at"], 2),
        **recovery(load, rows, window["back"]),
        "answers_while_down": dict(Counter(str(a.status) for a in answers)),
        "dispatches_while_down": dict(
            Counter(str(a.status) for a in answers if a.kind == "dispatch")
        ),
        # Set against jobs.created: a dispatch refused with a 503 should have created none.
        "dispatches": dict(Counter(str(a.status) for a in load.between(began, end, "dispatch"))),
        "jobs": job_report(rows, finishes(bench), baseline),
        "logs": log_lines(bench, window["fault_at"], window["back"] + AFTER_BACK_S),
    }


# The faults


async def quiet(bench: Bench, load: Load) -> dict[str, float]:
    """No fault: the baseline."""
    started = now()
    await asyncio.sleep(BASELINE_S - AFTER_BACK_S)
    return {"fault_at": started, "back": started}


async def postgres_restart(bench: Bench, load: Load) -> dict[str, float]:
    fault_at = now()
    await asyncio.to_thread(bench.pg.stop)
    stopped = now()
    await asyncio.sleep(3)
    await asyncio.to_thread(bench.pg.start)
    return {"fault_at": fault_at, "stopped": stopped, "back": bench.pg.ready_at().timestamp()}


async def valkey_restart(bench: Bench, load: Load) -> dict[str, float]:
    fault_at = now()
    await asyncio.to_thread(bench.valkey.stop)
    stopped = now()
    await asyncio.sleep(3)
    await asyncio.to_thread(bench.valkey.start)
    return {"fault_at": fault_at, "stopped": stopped, "back": bench.valkey.ready_at().timestamp()}


async def running_jobs(bench: Bench) -> list[Any]:
    return await bench.fetch(
        "SELECT id FROM activities WHERE tenant_id = $1 AND status = 'RUNNING'", bench.tenant.id
    )


async def worker_killed(bench: Bench, load: Load) -> dict[str, float]:
    """SIGKILL to the job worker while a job runs; back = its successor's "worker ready"."""
    await wait_for(lambda: running_jobs(bench), timeout=30, interval=0.02)
    worker = bench.serve.job_worker()
    ready = bench.serve.output().count("worker ready")
    worker.kill()
    fault_at = now()
    running = len(await running_jobs(bench))

    async def replaced() -> bool:
        return bench.serve.output().count("worker ready") > ready

    await wait_for(replaced, timeout=60, interval=0.02)
    return {"fault_at": fault_at, "back": now(), "running_at_kill": running}


async def serve_stopped(bench: Bench, load: Load) -> dict[str, float]:
    """SIGTERM to serve: until none of its processes is left; then serve again (back)."""
    root = psutil.Process(bench.serve.process.pid)
    tree = [root, *root.children(recursive=True)]
    await wait_for(lambda: running_jobs(bench), timeout=30, interval=0.02)
    running = len(await running_jobs(bench))
    fault_at = now()
    bench.serve.process.send_signal(signal.SIGTERM)

    async def none_left() -> bool:
        return not any(alive(p) for p in tree)

    await wait_for(none_left, timeout=60, interval=0.01)
    stop_s = now() - fault_at
    exit_code = bench.serve.process.wait()
    log = bench.state_dir.parent / "serve-2.log"
    bench.logs.append(log)
    bench.serve = await start_serve(bench.state_dir, log, bench.database_url, bench.valkey.url)
    load.url = bench.serve.url
    return {
        "fault_at": fault_at,
        "back": now(),
        "stop_s": round(stop_s, 2),
        "processes": len(tree),
        "running_at_stop": running,
        "exit_code": exit_code,
    }


# The cache's lag


async def cache_lag(bench: Bench, changes: int) -> dict[str, Any]:
    """mobileHome (cached) behind a worker's change: `changes` times, with no other load."""
    headers = {"authorization": f"Bearer {token(bench.tenant.slug, 'mobile')}"}
    redis = Redis.from_url(bench.valkey.url)
    lags, hits = [], 0
    try:
        async with httpx.AsyncClient(base_url=bench.serve.url, timeout=10) as http:

            async def pending() -> int:
                response = await http.post("/graphql", json=HOME, headers=headers)
                response.raise_for_status()
                return response.json()["data"]["mobileHome"]["pendingApprovalCount"]

            for n in range(changes):
                await pending()
                again = await http.post("/graphql", json=HOME, headers=headers)
                hits += server_timing(again).get("cache") == "hit"
                role = ROLES[n % len(ROLES)]
                (activity,) = await new_work(None, bench.tenant, role)
                await enqueue(redis, bench.tenant, role, activity, 5)

                async def awaiting(activity: uuid.UUID = activity) -> bool:
                    rows = await bench.fetch(
                        "SELECT status FROM activities WHERE id = $1", activity
                    )
                    return rows[0]["status"] == "AWAITING_APPROVAL"

                await wait_for(awaiting, timeout=30, interval=0.005)
                committed = time.monotonic()

                async def current() -> bool:
                    truth = await bench.fetch(
                        "SELECT count(*) FROM approvals WHERE tenant_id = $1 "
                        "AND status = 'PENDING'",
                        bench.tenant.id,
                    )
                    return await pending() == truth[0][0]

                await wait_for(current, timeout=10, interval=0.01)
                lags.append(time.monotonic() - committed)
    finally:
        await redis.aclose()
    return {"changes": changes, "cache_hits_before": hits, "lag_s": summary(lags, (90,))}


# The report


def row(name: str, values: list[Any], target: str) -> str:
    return f"| {name} | " + " | ".join(str(v) for v in values) + f" | {target} |"


def table(report: dict[str, Any]) -> str:
    faults = [f for f in report["faults"] if "error" not in f]
    failed = [f"{f['fault']} failed: {f['error']}" for f in report["faults"] if "error" in f]

    def each(get: Any) -> list[Any]:
        return [get(f) for f in faults]

    def lines(f: dict[str, Any]) -> str:
        per = f["logs"]["per_process"]
        return f"{per['serve']} / {per['gateway']} / {per['job_worker']}"

    def delayed(f: dict[str, Any]) -> str:
        delay = f["jobs"]["delay_over_baseline_p50_s"]
        return f"{f['jobs']['delayed']} of {f['jobs']['created']}" + (
            f" (max +{delay['max']} s)" if delay else ""
        )

    def dispatched(f: dict[str, Any]) -> str:
        return f"{f['dispatches']} / {f['jobs']['created']}"

    lag = report["cache_lag"]["lag_s"]
    out = [
        "| measure | " + " | ".join(f["fault"] for f in faults) + " | target |",
        "| --- | " + " | ".join("---" for _ in faults) + " | --- |",
        row("server down (s)", each(lambda f: f["down_s"]), ""),
        row("gateway: back → first 200 (s)", each(lambda f: f["gateway_first_200_s"]), "< 2"),
        row("worker: back → first claim (s)", each(lambda f: f["worker_first_claim_s"]), "< 2"),
        row("worker: back → first finish (s)", each(lambda f: f["worker_first_finish_s"]), ""),
        row("answers while down", each(lambda f: f["answers_while_down"]), "503, no 500"),
        row("dispatches answered / jobs created", each(dispatched), ""),
        row("jobs delayed", each(delayed), ""),
        row("jobs lost", each(lambda f: f["jobs"]["lost"]), "0"),
        row("jobs doubled", each(lambda f: f["jobs"]["doubled"]), "0"),
        row("log lines serve / gateway / worker", each(lines), "< 10 each"),
        row("stop (s)", each(lambda f: f.get("stop_s", "")), "< 10"),
        "",
        f"baseline dispatch → AWAITING_APPROVAL: {report['baseline']['jobs']['latency_s']}",
        f"cached mobileHome lag behind a worker's change (s): p50 {lag['p50']}, "
        f"p90 {lag['p90']}, max {lag['max']} over {lag['n']} (target < 1)",
        *failed,
    ]
    return "\n".join(out)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    for name in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"):
        os.environ.pop(name, None)  # serve gets the bench's own servers (start_serve)
    pg, valkey = DedicatedPostgres(), DedicatedValkey()
    bench: Bench | None = None
    try:
        valkey.start()
        database_url = await pg.database()
        tenant, deliverables = await prepare_tenant(database_url, args.deliverables)
        state_dir = folder / "state"
        log = folder / "serve-1.log"
        serve = await start_serve(state_dir, log, database_url, valkey.url)
        bench = Bench(pg, valkey, database_url, tenant, state_dir, serve, [log])
        began = now()
        report: dict[str, Any] = {"cache_lag": await cache_lag(bench, args.changes)}
        print(f"cache lag: {report['cache_lag']}", file=sys.stderr, flush=True)
        load = Load(serve.url, tenant.slug, deliverables, args.rps, args.dispatch_every_s)
        driver = asyncio.create_task(load.run())
        try:
            report["baseline"] = await phase(bench, load, quiet, {}, args.deadline_s)
            baseline = report["baseline"]["jobs"]["latency_s"]
            report["faults"] = []
            for fault in (postgres_restart, valkey_restart, worker_killed, serve_stopped):
                try:
                    outcome = await phase(bench, load, fault, baseline, args.deadline_s)
                except Exception as error:  # the next faults still run
                    outcome = {"fault": fault.__name__, "error": repr(error)}
                    print(f"{fault.__name__} failed: {error!r}", file=sys.stderr, flush=True)
                report["faults"].append(outcome)
        finally:
            driver.cancel()
            await asyncio.gather(driver, *load.tasks, return_exceptions=True)
            await load.http.aclose()
        report["requests"] = len(load.answers)
        report["all_jobs"] = job_report(
            await jobs_created(bench, began, now()), finishes(bench), baseline
        )
        report["serve_logs"] = [str(p) for p in bench.logs]
        return report
    finally:
        if bench is not None and bench.serve.process.poll() is None:
            bench.serve.process.send_signal(signal.SIGTERM)
            bench.serve.process.wait(timeout=60)
        valkey.close()
        pg.close()
        shutil.rmtree(folder / "state", ignore_errors=True)  # serve's logs stay


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=20.0, help="reads per second")
    parser.add_argument("--dispatch-every-s", type=float, default=0.2)
    parser.add_argument("--changes", type=int, default=20, help="cache-lag samples")
    parser.add_argument("--deliverables", type=int, default=1500)
    parser.add_argument(
        "--deadline-s", type=float, default=120.0, help="after a phase, for its jobs to finish"
    )
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    head = {
        "command": " ".join(sys.argv),
        "started": started.isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg(),
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "settings": {**SERVE_ENV, "rps": args.rps, "dispatch_every_s": args.dispatch_every_s},
        "targets": TARGETS,
    }
    body = asyncio.run(run(args))
    report = {**head, **body, "load_avg_end": os.getloadavg()}
    RESULTS.mkdir(exist_ok=True)
    name = f"bench-faults-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    (RESULTS / name).write_text(json.dumps(report, indent=1, default=str))
    print(table(report))
    print(f"wrote perf/results/{name}; serve's logs: {report['serve_logs']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
