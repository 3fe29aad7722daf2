"""Capacity (issue 19): what one unit of work costs each resource, measured, not guessed.

A unit is one request of a contract operation, one live event, one job or one relay pass.
For each, over a block of units run one after another (never two at once), the script
reads every resource's counters before and after and divides by the units:

- CPU: user + system seconds of the gateway process (`serve --workers 1 --job-workers 0`,
  its uvicorn child; production mode; rate limits on, with limits far above the load; the
  relay off, as stage 6 measures it), of the job worker for jobs, of this process for
  relay passes, of PgBouncer's process in stage 4 (clock ticks: 10 ms, so 0.05 ms a
  request over 200); of PostgreSQL (the postmaster and all its backends, each backend's
  from its schedstat in ns) and of Valkey (`INFO cpu`);
- PostgreSQL: `pg_stat_statements` (preloaded, `track = top`, planning tracked) of the
  gateway's user in the `switchboard` database: statements (BEGIN and COMMIT included),
  transactions (COMMITs), execution + planning ms; WAL bytes (`pg_current_wal_lsn()`);
- connections held: the gateway's pool instrumentation (`…_db_pool_checkouts_total` and
  `…_db_pool_connection_seconds_total` from its /metrics): checkout to checkin, which
  includes the gateway's own time while it holds one. Behind PgBouncer (stage 4) also
  PgBouncer's own count of the time a server connection was assigned (SHOW STATS
  `total_xact_time`): what a pool of 25 server connections runs out of;
- Redis: `INFO commandstats` calls (commands a Lua script runs count under their own
  names);
- the outbox rows (live events) a request writes.

Every phase has a gateway of its own and starts with an idle window (11 s); each counter's
idle rate (but WAL's, which is checkpoints' and vacuum's) is subtracted over each block's
duration. From before a gateway starts to after it stopped (when every backend has flushed
its statistics), PostgreSQL's active + idle-in-transaction time (`pg_stat_database`) is
set against the pool's connection-seconds. PostgreSQL (`tests/support/faults.py`'s
DedicatedPostgres: embedded 18, fsync and synchronous_commit on, shared_buffers 256 MB) and
Valkey (DedicatedValkey, no snapshots) are the script's own. Its setup, polls and checks go
through a role of their own (`capacity_probe`), left out of the statement counts.

Stages:
1. queries, response cache on, then off: every query of contract/operations/dashboard and
   /mobile (mobile ones by manifest id with a mobile token) on the demo tenant acme and the
   bench tenant, as their marketers, with bench_operations.py's variables: `--warmup`
   unmeasured, then `--runs`;
2. mutations (cache off: a mutation does not use it): every mutation the dashboard, the
   mobile app and agents send, `--mutations` of each per data set, each on rows of its own:
   createCampaign, updateCampaign, submitCampaign (the new campaigns), createDeliverable
   and dispatchActivity (2x, on them), the agent's reportActivityProgress to RUNNING (2x),
   a 40-character chunk (and the same chunk onto 100 kB and onto 500 kB of output, half
   as many each), recordLlmCall, to AWAITING_APPROVAL (2x), resolveApproval and the
   mobile one (APPROVE), setAgentStatus (an admin: PAUSED and IDLE in turn), setPreference;
3. live events, acme: events appended straight to Redis Streams with the relay's payloads
   and Lua script (log.py), so the gateway pays only its hub's part: an event of a stream
   nobody on this gateway follows (one at a time, and in batches of 100: what every gateway
   process pays for every event of the platform), TenantEvents with 1 and with 100
   websocket subscribers (one group), ActivityStream's TOKEN event with 1; each event
   waits until every subscriber has it;
4. PgBouncer 1.18 in transaction mode, pool 25 (tests/support/pgbouncer.py), between the
   gateway (`SWITCHBOARD_DB_POOLER=transaction`) and PostgreSQL: stage 1's queries with
   the cache off and stage 2's mutations (half as many). It runs right after stage 1, as
   every query phase runs before any mutation (submitCampaign's campaigns would otherwise
   be the newest ACTIVE ones that DashboardOverview and CampaignDetail show);
5. one job worker (`python -m tasks.worker`, 8 slots) over `--jobs` queued activities of
   15 demo-like tenants (bench_jobs.py's), the simulated runtime with no delay a token
   (`SWITCHBOARD_SIM_TOKEN_DELAY_MS=0`: the CPU-bound ceiling), then `--paced-jobs` at its
   default 25 ms a token (what a streamed run writes); jobs/s from the worker's readiness
   to the last job's end;
6. the outbox relay (switchboard/live/relay.py) in this process, no gateway running: it
   drains what stages 2 and 5 left (their real mix of events) in passes of up to 500 rows
   of each outbox, then passes of exactly 1, 10, 100 and 500 tenant events (the relay's
   BATCH set for the stage); then one firehose reader, as each gateway's hub, reads the
   whole firehose (Valkey's cost per entry and reader).

Run from the repository root, in the venv (6–8 minutes on 2 cores; seeds the bench
tenant into its own server):

    uptime                                   # note the load first
    python perf/bench_capacity.py            # perf/results/bench-capacity-*.json + tables
    python perf/bench_capacity.py --skip-bench --runs 50 --mutations 20   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
from graphql import OperationType
from sqlalchemy.ext.asyncio import create_async_engine

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_jobs import open_activities, start_worker  # noqa: E402  (perf/bench_jobs.py)
from bench_jobs import prepare as prepare_job_tenants  # noqa: E402
from bench_operations import (  # noqa: E402  (perf/bench_operations.py)
    OPERATIONS,
    Operation,
    load_operations,
    lookup_ids,
    post,
    tokens_for,
    variables_for,
)
from gateway import (  # noqa: E402  (perf/gateway.py)
    cpu_s,
    free_port,
    gateway_pid,
    start_gateway,
    stop_gateway,
    tree_cpu_s,
)
from stats import summary  # noqa: E402  (perf/stats.py)

from domain.enums import AgentRole  # noqa: E402
from domain.ids import to_global_id  # noqa: E402
from domain.store.events import record_event  # noqa: E402
from switchboard.bootstrap import build_services  # noqa: E402
from switchboard.devdata.seed import stable_id  # noqa: E402
from switchboard.edge.auth import issue_token  # noqa: E402
from switchboard.live import relay as relay_module  # noqa: E402
from switchboard.live.log import FIREHOSE, EventLog  # noqa: E402
from switchboard.live.relay import Relay, stream_outgoing, tenant_outgoing  # noqa: E402
from switchboard.observability import metrics  # noqa: E402
from switchboard.settings import Settings  # noqa: E402
from tasks.config import JobSettings  # noqa: E402
from tasks.queue import enqueue_activity  # noqa: E402
from tests.support.faults import DedicatedPostgres, DedicatedValkey  # noqa: E402
from tests.support.live import ACTIVITY_STREAM, TENANT_EVENTS, LiveClient  # noqa: E402
from tests.support.pgbouncer import PgBouncer  # noqa: E402

RESULTS = REPO / "perf" / "results"
DATA_SETS = {"demo": "acme", "bench": "bench"}
SECRET = "capacity-bench-secret-not-the-development-one"
PROBE_ROLE = "capacity_probe"
IDLE_S = 11.0  # the idle window each phase measures its counters' idle rates over
SETTLE_S = 0.3  # after a block: the audit log's insert, written just after the response
LIMIT = "100000000"
SERVE_ENV = {
    "SWITCHBOARD_MODE": "production",
    "SWITCHBOARD_JWT_SECRET": SECRET,
    "SWITCHBOARD_LIVE_RELAY_OFF": "1",  # stage 6 measures the relay on its own
    "SWITCHBOARD_LOG_LEVEL": "WARNING",
    "SWITCHBOARD_RATE_LIMIT": "1",
    "SWITCHBOARD_RATE_LIMIT_DASHBOARD": LIMIT,
    "SWITCHBOARD_RATE_LIMIT_MOBILE": LIMIT,
    "SWITCHBOARD_RATE_LIMIT_AGENT": LIMIT,
}
PG_CONF = {"shared_buffers": "'256MB'", "work_mem": "'16MB'", "jit": "off"}
STATEMENTS_SQL = """
SELECT coalesce(sum(calls), 0)::float8, coalesce(sum(total_exec_time), 0)::float8,
       coalesce(sum(total_plan_time), 0)::float8,
       coalesce(sum(calls) FILTER (WHERE query ILIKE 'commit%'), 0)::float8,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8
FROM pg_stat_statements WHERE dbid = $1 AND userid = $2 AND toplevel
"""
SESSION_SQL = """SELECT active_time + idle_in_transaction_time FROM pg_stat_database
WHERE datname = 'switchboard'"""
UNRELAYED_SQL = """SELECT (SELECT count(*) FROM tenant_events WHERE NOT relayed)::float8,
       (SELECT count(*) FROM activity_stream_events WHERE NOT relayed)::float8"""
AGENTS = "query CapacityAgents { tenant { agents { id role } } }"
UNPLANNED = [role.value for role in AgentRole if role is not AgentRole.ACTIVITY_PLANNER]
CHUNK = "Forty characters of streamed agent text."
POOL = 25  # PgBouncer's pool per instance (deploy/compose.yaml)

# Measuring


class Meter:
    """Reads every resource's counters; `begin` and `end` order the reads so that the CPU
    window holds only the block (the /metrics scrape and the statistics queries fall
    outside it)."""

    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        self.cpu: dict[str, Callable[[], float]] = {}  # process name → its CPU seconds
        self.metrics_url: str | None = None  # the gateway's /metrics, for the pool counters
        self.pool: Callable[[], tuple[float, float]] | None = None  # or this process's pool
        self.sources: list[Callable[[], Awaitable[dict[str, float]]]] = []  # PgBouncer's

    async def _counters(self) -> dict[str, float]:
        found: dict[str, float] = {}
        if self.metrics_url is not None:
            async with httpx.AsyncClient(timeout=30) as http:
                text = (await http.get(self.metrics_url)).text
            for name, key in (
                ("switchboard_db_pool_checkouts_total", "pool_checkouts"),
                ("switchboard_db_pool_connection_seconds_total", "pool_seconds"),
            ):
                match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
                found[key] = float(match[1]) if match else 0.0
        elif self.pool is not None:
            found["pool_checkouts"], found["pool_seconds"] = self.pool()
        for source in self.sources:
            found |= await source()
        s = self.servers
        row = await s.stats.fetchrow(STATEMENTS_SQL, s.dbid, s.userid)
        found |= dict(
            zip(("statements", "pg_exec_ms", "pg_plan_ms", "commits", "wal"), row, strict=True)
        )
        for name, stats in (await s.redis.info("commandstats")).items():
            command = name.removeprefix("cmdstat_")
            if command not in ("info", "ping", "client|setname", "client|setinfo", "hello"):
                found[f"redis:{command}"] = float(stats["calls"])
        return found

    async def _cpu(self) -> dict[str, float]:
        found = {f"cpu:{name}": read() for name, read in self.cpu.items()}
        found["cpu:postgres"] = tree_cpu_s(self.servers.postmaster)
        valkey = await self.servers.redis.info("cpu")
        found["cpu:valkey"] = float(valkey["used_cpu_user"]) + float(valkey["used_cpu_sys"])
        found["at"] = time.perf_counter()
        return found

    async def begin(self) -> dict[str, float]:
        counters = await self._counters()
        return counters | await self._cpu()

    async def end(self) -> dict[str, float]:
        cpu = await self._cpu()
        return await self._counters() | cpu

    async def rates(self, seconds: float) -> dict[str, float]:
        """Every counter's rate per second while nothing is sent."""
        before = await self.begin()
        await asyncio.sleep(seconds)
        after = await self.end()
        wall = after["at"] - before["at"]
        return {k: (after[k] - before.get(k, 0.0)) / wall for k in after if k != "at"}


def per_unit(
    before: dict[str, float], after: dict[str, float], units: int, idle: dict[str, float]
) -> dict[str, Any]:
    """The block's use of each resource, less the idle rate over its duration, per unit."""
    wall = after["at"] - before["at"]
    # WAL at idle is checkpoints' and autovacuum's, not a steady rate: it is not subtracted.
    used = {
        k: after[k] - before.get(k, 0.0) - (idle.get(k, 0.0) * wall if k != "wal" else 0.0)
        for k in after
        if k != "at"
    }
    commands = {
        k.removeprefix("redis:"): v / units for k, v in used.items() if k.startswith("redis:")
    }
    redis = {k: round(v, 2) for k, v in sorted(commands.items()) if v >= 0.005}
    figures: dict[str, Any] = {
        f"{k.removeprefix('cpu:')}_cpu_ms": round(v * 1000 / units, 3)
        for k, v in used.items()
        if k.startswith("cpu:")
    }
    figures |= {
        "pg_exec_ms": round(used["pg_exec_ms"] / units, 3),
        "pg_plan_ms": round(used["pg_plan_ms"] / units, 3),
        "statements": round(used["statements"] / units, 2),
        "transactions": round(used["commits"] / units, 2),
        "wal_bytes": round(used["wal"] / units),
        "redis_commands": round(sum(v for v in commands.values() if v > 0), 2),
        "redis": redis,
        "wall_ms": round(wall * 1000 / units, 3),
        "units": units,
    }
    if "pool_seconds" in used:
        figures["connection_ms"] = round(used["pool_seconds"] * 1000 / units, 3)
        figures["checkouts"] = round(used["pool_checkouts"] / units, 2)
    if "bouncer_xact_us" in used:  # a server connection held, as PgBouncer counts it
        figures["server_hold_ms"] = round(used["bouncer_xact_us"] / 1000 / units, 3)
        figures["server_transactions"] = round(used["bouncer_xacts"] / units, 2)
        figures["bouncer_wait_ms"] = round(used["bouncer_wait_us"] / 1000 / units, 3)
        if figures["server_hold_ms"] > 0:
            figures["pool25_rps"] = round(POOL * 1000 / figures["server_hold_ms"])
    return figures


async def measured(
    meter: Meter, units: int, idle: dict[str, float], work: Callable[[], Awaitable[Any]]
) -> tuple[dict[str, Any], Any]:
    """Run `work` (the block) between the counters' reads; (figures per unit, its result)."""
    before = await meter.begin()
    result = await work()
    await asyncio.sleep(SETTLE_S)
    after = await meter.end()
    return per_unit(before, after, units, idle), result


# Servers


class Servers:
    """The script's own PostgreSQL and Valkey, and the connections it reads them with."""

    pg: DedicatedPostgres
    valkey: DedicatedValkey
    stats: asyncpg.Connection  # the postgres database: pg_stat_statements, session times
    probe: asyncpg.Connection  # switchboard, as PROBE_ROLE: setup, polls, outbox counts
    redis: Any  # redis.asyncio.Redis: INFO, and the live stage's publishes
    dbid: int
    userid: int
    postmaster: int

    @property
    def database_url(self) -> str:
        return self.pg.url("switchboard")

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.database_url, "REDIS_URL": self.valkey.url}

    async def start(self, data_sets: Sequence[str]) -> None:
        from redis.asyncio import Redis

        self.pg = DedicatedPostgres()
        self.valkey = DedicatedValkey()
        self.valkey.start()
        admin = await asyncpg.connect(self.pg.libpq_url())
        try:
            for name, value in PG_CONF.items():
                await admin.execute(f"ALTER SYSTEM SET {name} = {value}")
        finally:
            await admin.close()
        await self.pg.preload_statements(track_planning=True)  # restarts it with all of this
        await self.pg.database("switchboard")
        environment = {**os.environ, **self.env(), "SWITCHBOARD_JWT_SECRET": SECRET}
        for which in ("--demo", "--bench") if "bench" in data_sets else ("--demo",):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "switchboard.cli", "seed", which],
                cwd=REPO,
                env=environment,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            print(f"seed {which}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
        self.stats = await asyncpg.connect(self.pg.libpq_url())
        await self.stats.execute(f"CREATE ROLE {PROBE_ROLE} LOGIN SUPERUSER")
        self.probe = await asyncpg.connect(self.probe_url(libpq=True))
        self.dbid = await self.stats.fetchval(
            "SELECT oid FROM pg_database WHERE datname = 'switchboard'"
        )
        self.userid = await self.stats.fetchval(
            "SELECT oid FROM pg_roles WHERE rolname = 'postgres'"
        )
        self.postmaster = int((self.pg.folder / "postmaster.pid").read_text().split()[0])
        self.redis = Redis.from_url(self.valkey.url)
        await self.redis.config_set("save", "")  # no snapshot forks while measuring

    def probe_url(self, *, libpq: bool = False) -> str:
        url = self.pg.libpq_url("switchboard") if libpq else self.database_url
        return url.replace("postgres:@", f"{PROBE_ROLE}:@", 1).replace(
            "postgres@", f"{PROBE_ROLE}@", 1
        )

    async def settings(self) -> dict[str, str]:
        rows = await self.stats.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1) ORDER BY name",
            ["server_version", "shared_buffers", "synchronous_commit", "fsync", "work_mem"],
        )
        return {
            r["name"]: f"{r['setting']} × {r['unit']}" if r["unit"] else r["setting"] for r in rows
        }

    async def fill_output(self, activities: list[uuid.UUID], size: int) -> None:
        """Give the activities `size` characters of output (words, compressible as text
        is), as a bulk load does: no TOKEN row."""
        words = (REPO / "contract" / "README.md").read_text().split()
        rng = random.Random(size)
        text = ""
        while len(text) < size:
            text += " ".join(rng.choices(words, k=1000)) + "\n"
        async with self.probe.transaction():
            await self.probe.execute("SET LOCAL switchboard.bulk_load = 'on'")
            await self.probe.execute(
                "UPDATE activities SET output = $2 WHERE id = ANY($1::uuid[])",
                activities,
                text[:size],
            )

    async def unrelayed(self) -> tuple[float, float]:
        row = await self.probe.fetchrow(UNRELAYED_SQL)
        return row[0], row[1]

    async def close(self) -> None:
        for closing in (self.stats, self.probe):
            with contextlib.suppress(Exception):
                await closing.close()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        self.valkey.close()
        self.pg.close()


# Requests


Request = tuple[str, Operation, dict[str, Any]]


def send_all(http: httpx.Client, requests: Sequence[Request]) -> tuple[list[float], list[Any]]:
    """Each request in turn; (round-trip ms, answers' JSON). An error stops the run."""
    latencies, answers = [], []
    for token, operation, variables in requests:
        started = time.perf_counter()
        response = post(http, token, operation, variables)
        latencies.append((time.perf_counter() - started) * 1000)
        answers.append(response)
    bodies = [response.json() for response in answers]
    for response, body in zip(answers, bodies, strict=True):
        errors = body.get("errors") if response.status_code == 200 else response.text[:300]
        data = body.get("data") or {}
        user_errors = [
            e
            for value in data.values()
            if isinstance(value, dict)
            for e in value.get("userErrors", [])
        ]
        if errors or user_errors:
            raise RuntimeError(f"{requests[0][1].name}: {errors or user_errors}")
    return latencies, bodies


class Gateway:
    """One `serve --workers 1 --job-workers 0` on the script's servers, and its tokens."""

    def __init__(
        self, servers: Servers, label: str, cache: bool, state: Path, env_extra: dict[str, str]
    ) -> None:
        env = {**SERVE_ENV, **servers.env(), "SWITCHBOARD_RESPONSE_CACHE": "1" if cache else "0"}
        env |= env_extra
        log = state / f"serve-{label}.log"
        self.process, port = start_gateway(state / label, log, env, extra=("--job-workers", "0"))
        self.pid = gateway_pid(self.process)
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=60)
        self.settings = Settings.from_env({"SWITCHBOARD_JWT_SECRET": SECRET})
        self.agents: dict[str, dict[str, str]] = {}  # slug → role → the agent's id

    def tokens(self, slug: str) -> dict[str, str]:
        tokens = tokens_for(slug, self.settings)
        tenant = to_global_id("Tenant", stable_id(slug, "tenant"))
        admin = to_global_id("User", stable_id("user", f"admin@{slug}.example"))
        tokens["admin"] = issue_token(self.settings, admin, tenant, "dashboard")
        agents = send_all(self.http, [(tokens["dashboard"], agents_lookup(), {})])[1][0]
        for agent in agents["data"]["tenant"]["agents"]:
            tokens[agent["role"]] = issue_token(self.settings, agent["id"], tenant, "agent")
            self.agents.setdefault(slug, {})[agent["role"]] = agent["id"]
        return tokens

    def stop(self) -> None:
        self.http.close()
        stop_gateway(self.process)


def agents_lookup() -> Operation:
    return Operation("dashboard", "CapacityAgents", AGENTS)


async def query_stage(
    gateway: Gateway, meter: Meter, idle: dict[str, float], phase: str, args: Any
) -> list[dict[str, Any]]:
    rows = []
    for data_set in args.data:
        for operation, block in await asyncio.to_thread(
            query_block, gateway, data_set, args.warmup
        ):
            measure = block[:1] * args.runs
            figures, (latencies, _) = await measured(
                meter,
                args.runs,
                idle,
                lambda measure=measure: asyncio.to_thread(send_all, gateway.http, measure),
            )
            rows.append(row(phase, data_set, operation.name, "query", figures, latencies))
    return rows


def row(
    phase: str, data_set: str, name: str, kind: str, figures: dict[str, Any], latencies: Any
) -> dict[str, Any]:
    found = {"phase": phase, "data": data_set, "operation": name, "kind": kind, **figures}
    found["load1"] = round(os.getloadavg()[0], 2)  # the machine's, as the block ended
    if latencies:
        found["client_ms"] = summary(latencies)
    print(
        f"{phase:<9} {data_set:<5} {name:<34} gateway {figures.get('gateway_cpu_ms', '-')} ms, "
        f"PG {figures['pg_exec_ms']}+{figures['pg_plan_ms']} ms, {figures['statements']} st, "
        f"conn {figures.get('connection_ms', '-')} ms, redis {figures['redis_commands']}",
        file=sys.stderr,
        flush=True,
    )
    return found


def gid_uuid(global_id: str) -> uuid.UUID:
    return uuid.UUID(hex=global_id.partition("_")[2])


async def mutation_stage(
    gateway: Gateway,
    servers: Servers,
    meter: Meter,
    idle: dict[str, float],
    args: Any,
    phase: str = "mutations",
    n: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every mutation, `args.mutations` of each per data set (an activity's steps twice
    that), each on rows of its own; returns the rows, and an acme campaign and activity for
    the live stage."""
    rows: list[dict[str, Any]] = []
    kept: dict[str, str] = {}
    n = n or args.mutations
    for data_set in args.data:
        mutations = Mutations(gateway, servers, meter, idle, data_set, phase)
        rows += await mutations.run_all(n, kept)
    return rows, kept


class Mutations:
    """One data set's mutations, in the order each needs the rows of the one before."""

    def __init__(
        self,
        gateway: Gateway,
        servers: Servers,
        meter: Meter,
        idle: dict[str, float],
        data: str,
        phase: str,
    ) -> None:
        self.gateway, self.servers, self.meter, self.idle = gateway, servers, meter, idle
        self.data, self.phase = data, phase
        self.slug = DATA_SETS[data]
        self.tokens = gateway.tokens(self.slug)
        self.ops = {
            op.name: op
            for op in load_operations(
                OPERATIONS, (OperationType.MUTATION,), ("dashboard", "mobile", "agent")
            )
        }
        self.rows: list[dict[str, Any]] = []

    async def run(
        self, label: str, name: str, token: str | list[str], variables: list[dict[str, Any]]
    ) -> list[Any]:
        """Send `name` once per variables (with `token`, or the token of each), measured."""
        tokens = token if isinstance(token, list) else [token] * len(variables)
        requests = [(t, self.ops[name], v) for t, v in zip(tokens, variables, strict=True)]
        before = await self.servers.unrelayed()
        figures, (latencies, bodies) = await measured(
            self.meter,
            len(requests),
            self.idle,
            lambda: asyncio.to_thread(send_all, self.gateway.http, requests),
        )
        after = await self.servers.unrelayed()
        units = len(requests)
        figures["events"] = round((after[0] - before[0] + after[1] - before[1]) / units, 2)
        figures["tenant_events"] = round((after[0] - before[0]) / units, 2)
        self.rows.append(row(self.phase, self.data, label, "mutation", figures, latencies))
        return bodies

    async def run_all(self, n: int, kept: dict[str, str]) -> list[dict[str, Any]]:
        marketer, stamp = self.tokens["dashboard"], uuid.uuid4().hex[:6]
        made = await self.run(
            "CreateCampaign",
            "CreateCampaign",
            marketer,
            [{"input": {"name": f"cap {stamp} {i}"}} for i in range(n)],
        )
        campaigns = [b["data"]["createCampaign"]["campaign"]["id"] for b in made]
        renames = [{"name": f"cap {stamp} renamed {i}"} for i in range(n)]
        await self.run(
            "UpdateCampaign",
            "UpdateCampaign",
            marketer,
            [{"id": campaigns[0], "input": r} for r in renames],
        )
        await self.run("SubmitCampaign", "SubmitCampaign", marketer, [{"id": c} for c in campaigns])
        made = await self.run(
            "CreateDeliverable",
            "CreateDeliverable",
            marketer,
            [
                {"input": {"campaignId": campaigns[i % n], "title": f"Cap {i}", "kind": "REPORT"}}
                for i in range(2 * n)
            ],
        )
        deliverables = [b["data"]["createDeliverable"]["deliverable"]["id"] for b in made]
        roles = [UNPLANNED[i % len(UNPLANNED)] for i in range(2 * n)]
        made = await self.run(
            "DispatchActivity",
            "DispatchActivity",
            marketer,
            [
                {"input": {"deliverableId": d, "role": r}}
                for d, r in zip(deliverables, roles, strict=True)
            ],
        )
        activities = [b["data"]["dispatchActivity"]["activity"]["id"] for b in made]
        if self.data == "demo":
            kept |= {"campaign": campaigns[0], "activity": activities[0]}
        agents = [self.tokens[r] for r in roles]
        report = "ReportActivityProgress"
        for label, status, chunk, count in (
            ("ReportActivityProgress (RUNNING)", "RUNNING", None, 2 * n),
            ("ReportActivityProgress (chunk)", None, CHUNK, n),
        ):
            inputs = [{"activityId": a, "status": status, "chunk": chunk} for a in activities]
            await self.run(label, report, agents[:count], [{"input": i} for i in inputs[:count]])
        # A chunk rewrites the activity's whole output: the same chunk onto a long output.
        half = n // 2
        for size, first in ((100_000, n), (500_000, n + half)):
            which = range(first, first + half)
            await self.servers.fill_output([gid_uuid(activities[i]) for i in which], size)
            chunks = [{"input": {"activityId": activities[i], "chunk": CHUNK}} for i in which]
            label = f"ReportActivityProgress (chunk onto {size // 1000} kB of output)"
            await self.run(label, report, [agents[i] for i in which], chunks)
            # Short again: every Activity a loader reads carries its output (its SELECT
            # names the column), so long ones would make the later phases' queries dearer.
            await self.servers.fill_output([gid_uuid(activities[i]) for i in which], 100)
        call = {"provider": "ollama", "model": "llama-3.1-70b", "inputTokens": 900}
        call |= {"outputTokens": 120, "costUsd": "0.000612", "latencyMs": 800}
        calls = [{"input": {"activityId": a, **call}} for a in activities[:n]]
        await self.run("RecordLlmCall", "RecordLlmCall", agents[:n], calls)
        done = [{"input": {"activityId": a, "status": "AWAITING_APPROVAL"}} for a in activities]
        await self.run("ReportActivityProgress (AWAITING_APPROVAL)", report, agents, done)
        approvals = [
            {"input": {"approvalId": to_global_id("Approval", r["id"]), "decision": "APPROVE"}}
            for r in await self.servers.probe.fetch(
                "SELECT id FROM approvals WHERE activity_id = ANY($1::uuid[]) "
                "AND status = 'PENDING' ORDER BY requested_at, id",
                [gid_uuid(a) for a in activities],
            )
        ]
        await self.run("ResolveApproval", "ResolveApproval", marketer, approvals[:n])
        mobile = self.tokens["mobile"]
        await self.run(
            "MobileResolveApproval", "MobileResolveApproval", mobile, approvals[n : 2 * n]
        )
        analyst = self.gateway.agents[self.slug]["DATA_ANALYST"]
        statuses = itertools.islice(itertools.cycle(["PAUSED", "IDLE"]), 2 * (n // 2))
        await self.run(
            "SetAgentStatus",
            "SetAgentStatus",
            self.tokens["admin"],
            [{"id": analyst, "status": s} for s in statuses],
        )
        await self.run(
            "SetPreference",
            "SetPreference",
            marketer,
            [{"key": "capacity.bench", "value": {"n": i}} for i in range(n)],
        )
        return self.rows


# Live events


async def live_stage(
    gateway: Gateway, servers: Servers, meter: Meter, idle: dict[str, float], kept: dict, args: Any
) -> list[dict[str, Any]]:
    """The gateway hub's cost per event: events appended straight to the streams."""
    log = EventLog(servers.redis)
    ids = itertools.count(10**15)  # dedup keys no outbox row will have
    acme = stable_id("acme", "tenant")
    campaign = gid_uuid(kept["campaign"])
    activity = gid_uuid(kept["activity"])
    stranger = uuid.uuid4()
    token = gateway.tokens("acme")["dashboard"]
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    events = max(100, args.events // 100 * 100)  # whole batches of 100 below
    rows: list[dict[str, Any]] = []

    def tenant_event(tenant: uuid.UUID) -> Any:
        return tenant_outgoing(
            SimpleNamespace(
                id=next(ids),
                tenant_id=tenant,
                type="CAMPAIGN_UPDATED",
                approval_id=None,
                activity_id=None,
                agent_id=None,
                campaign_id=campaign,
                occurred_at=dt.datetime.now(dt.UTC),
            )
        )

    def token_event() -> Any:
        return stream_outgoing(
            SimpleNamespace(
                id=next(ids),
                tenant_id=acme,
                activity_id=activity,
                kind="TOKEN",
                text=CHUNK,
                status=None,
                occurred_at=dt.datetime.now(dt.UTC),
            )
        )

    async def publish(outgoing: list[Any]) -> None:
        await log.publish(outgoing, int(time.time() * 1000))

    async def unfollowed(batch: int) -> None:
        for _ in range(events // batch):  # `events` a multiple of 100
            await publish([tenant_event(stranger) for _ in range(batch)])
            await asyncio.sleep(0.005)  # the hub reads them in one XREAD, then waits

    for label, batch in (
        ("event nobody here follows", 1),
        ("event nobody here follows, x100", 100),
    ):
        figures, _ = await measured(meter, events, idle, lambda batch=batch: unfollowed(batch))
        rows.append(row("live", "demo", label, "event", figures, None))

    cases = [
        ("TenantEvents, 1 subscriber", TENANT_EVENTS, {}, 1, lambda: tenant_event(acme)),
        ("TenantEvents, 100 subscribers", TENANT_EVENTS, {}, 100, lambda: tenant_event(acme)),
        (
            "ActivityStream TOKEN, 1 subscriber",
            ACTIVITY_STREAM,
            {"activityId": kept["activity"]},
            1,
            token_event,
        ),
    ]
    for label, document, variables, subscribers, make in cases:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(LiveClient.connect(url, token))
                for _ in range(subscribers)
            ]
            for client in clients:
                await client.subscribe("1", document, variables)
            await everyone_listening(clients, lambda make=make: publish([make()]))

            async def deliver(clients: list[LiveClient] = clients, make: Any = make) -> None:
                for _ in range(events):
                    await publish([make()])
                    await asyncio.gather(*(client.next_data() for client in clients))

            figures, _ = await measured(meter, events, idle, deliver)
            rows.append(row("live", "demo", label, "event", figures, None))
    return rows


async def everyone_listening(
    clients: list[LiveClient], send: Callable[[], Awaitable[None]]
) -> None:
    """Send events until every client has received one (all subscriptions registered),
    then read what is left, so the measured events start on quiet sockets."""
    waiting = set(range(len(clients)))
    deadline = time.monotonic() + 30
    while waiting:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} subscribers never received an event")
        await send()
        await asyncio.sleep(0.2)
        for n in list(waiting):
            with contextlib.suppress(TimeoutError):
                await clients[n].next_data(timeout=0.01)
                waiting.discard(n)
    for client in clients:
        with contextlib.suppress(TimeoutError):
            while True:
                await client.next_data(timeout=0.2)


# Jobs


async def worker_stage(
    servers: Servers, meter: Meter, idle: dict[str, float], jobs: int, delay_ms: float
) -> dict[str, Any]:
    """One worker over `jobs` queued activities (no planner: its run makes more work) of
    bench_jobs.py's tenants; figures per job."""
    infrastructure = build_services(
        Settings.from_env({**servers.env(), "SWITCHBOARD_JWT_SECRET": SECRET}),
        JobSettings.from_env({}),
    )
    try:
        tenants = await prepare_job_tenants(servers.database_url)
        chosen: list[Any] = []
        while len(chosen) < jobs:
            made = await open_activities(servers.database_url, tenants)
            planned = [a for a in made if a[2] != AgentRole.ACTIVITY_PLANNER.value]
            extra = [a[3] for a in made if a not in planned[: jobs - len(chosen)]]
            chosen += planned[: jobs - len(chosen)]
            await servers.probe.execute(
                "UPDATE activities SET status = 'CANCELLED' WHERE id = ANY($1::uuid[])", extra
            )
        for slug, tenant_id, role, activity_id in chosen:
            await enqueue_activity(
                infrastructure.redis,
                activity_id=activity_id,
                tenant_id=tenant_id,
                agent_id=stable_id(slug, "agent", role),
                priority=5,
            )
    finally:
        await infrastructure.close()
    log = Path(servers.pg.folder) / f"worker-{delay_ms:g}.log"
    env = {
        **os.environ,
        **servers.env(),
        "SWITCHBOARD_JWT_SECRET": SECRET,
        "SWITCHBOARD_MODE": "production",
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
        "SWITCHBOARD_SIM_TOKEN_DELAY_MS": str(delay_ms),
        "SWITCHBOARD_WORKER_TENANTS": ",".join(str(t) for t in tenants.values()),
        "SWITCHBOARD_WORKER_SCHEDULER": "0",
        "SWITCHBOARD_WORKER_METRICS_PORT": str(port := free_port()),
    }
    ids = [a[3] for a in chosen]
    before_events = await servers.unrelayed()
    worker = start_worker(env, log)
    try:
        deadline = time.monotonic() + 120
        while "worker ready" not in log.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start; see {log}")
            await asyncio.sleep(0.02)
        meter.cpu = {"worker": lambda: cpu_s(worker.pid)}
        meter.metrics_url = f"http://127.0.0.1:{port}/metrics"

        async def drained() -> float:
            started = time.perf_counter()
            while await servers.probe.fetchval(
                "SELECT count(*) FROM activities WHERE id = ANY($1::uuid[]) "
                "AND status IN ('QUEUED', 'RUNNING')",
                ids,
            ):
                if time.perf_counter() - started > 600:
                    raise RuntimeError("the jobs did not finish within 10 minutes")
                await asyncio.sleep(0.05)
            return time.perf_counter() - started

        figures, took = await measured(meter, len(ids), idle, drained)
    finally:
        meter.metrics_url = None
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
    after_events = await servers.unrelayed()
    outcomes = {
        r["status"]: r["n"]
        for r in await servers.probe.fetch(
            "SELECT status, count(*) AS n FROM activities WHERE id = ANY($1::uuid[]) "
            "GROUP BY status",
            ids,
        )
    }
    calls = await servers.probe.fetchval(
        "SELECT count(*) FROM llm_calls WHERE activity_id = ANY($1::uuid[])", ids
    )
    figures |= {
        "load1": round(os.getloadavg()[0], 2),
        "jobs": len(ids),
        "token_delay_ms": delay_ms,
        "seconds": round(took, 2),
        "jobs_per_s": round(len(ids) / took, 1),
        "outcomes": outcomes,
        "llm_calls_per_job": round(calls / len(ids), 2),
        "tenant_events_per_job": round((after_events[0] - before_events[0]) / len(ids), 2),
        "stream_events_per_job": round((after_events[1] - before_events[1]) / len(ids), 2),
    }
    print(f"worker, {delay_ms:g} ms a token: {json.dumps(figures)}", file=sys.stderr, flush=True)
    return figures


# The relay


async def relay_stage(
    servers: Servers, meter: Meter, idle: dict[str, float], args: Any
) -> dict[str, Any]:
    """The outbox relay in this process (the gateway stopped): the backlog the other
    stages left, passes of exact sizes, and the firehose read as a hub reads it."""
    infrastructure = build_services(
        Settings.from_env({**servers.env(), "SWITCHBOARD_JWT_SECRET": SECRET}),
        JobSettings.from_env({}),
    )
    relay = Relay(infrastructure.db, infrastructure.redis, None)
    meter.cpu = {"relay": time.process_time}
    meter.pool = own_pool
    found: dict[str, Any] = {}
    try:
        backlog = await servers.unrelayed()
        passes: list[tuple[int, float, float]] = []

        async def drain() -> None:
            while True:
                published, started, cpu = relay.published, time.perf_counter(), time.process_time()
                moved = await relay.relay_once()
                passes.append(
                    (
                        relay.published - published,
                        time.perf_counter() - started,
                        time.process_time() - cpu,
                    )
                )
                if not moved:
                    return

        events = int(sum(backlog))
        figures, _ = await measured(meter, max(events, 1), idle, drain)
        full = [p for p in passes if p[0]]
        found["backlog"] = {
            "tenant_events": int(backlog[0]),
            "stream_events": int(backlog[1]),
            "passes": len(full),
            "events_per_pass": summary([float(p[0]) for p in full]),
            "pass_ms": summary([p[1] * 1000 for p in full]),
            "events_per_s": round(sum(p[0] for p in full) / sum(p[1] for p in full)),
            "per_event": figures,
        }
        print(f"relay backlog: {json.dumps(found['backlog'])}", file=sys.stderr, flush=True)
        engine = create_async_engine(servers.probe_url())
        acme = stable_id("acme", "tenant")
        try:
            for size in (1, 10, 100, 500):
                count = max(args.relay_passes // max(size // 10, 1), 10)
                async with engine.begin() as conn:
                    for _ in range(size * count):
                        await record_event(conn, acme, "CAMPAIGN_UPDATED")
                relay_module.BATCH = size
                timings: list[tuple[float, float]] = []

                async def passes_of(
                    count: int = count, timings: list = timings, size: int = size
                ) -> None:
                    for _ in range(count):
                        started, cpu = time.perf_counter(), time.process_time()
                        moved = await relay.relay_once()
                        assert moved == size, moved
                        timings.append((time.perf_counter() - started, time.process_time() - cpu))

                figures, _ = await measured(meter, count, idle, passes_of)
                found[f"passes of {size}"] = {
                    "passes": count,
                    "pass_ms": summary([t[0] * 1000 for t in timings]),
                    "events_per_s": round(size * count / sum(t[0] for t in timings)),
                    "per_pass": figures,
                }
                print(
                    f"relay, passes of {size}: {json.dumps(found[f'passes of {size}'])}",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            relay_module.BATCH = 500
            await engine.dispose()
        found["firehose_read"] = await firehose_read(servers, meter, idle)
    finally:
        await infrastructure.close()
    return found


def own_pool() -> tuple[float, float]:
    """This process's pool counters (the relay's engine): checkouts, connection-seconds."""
    return (
        metrics.DB_POOL_CHECKOUTS._value.get(),
        metrics.DB_POOL_CONNECTION_SECONDS._value.get(),
    )


async def firehose_read(servers: Servers, meter: Meter, idle: dict[str, float]) -> dict[str, Any]:
    """Valkey's cost per firehose entry read, in XREADs of 500 as each hub reads it."""
    from redis.asyncio import Redis

    reader = Redis.from_url(servers.valkey.url)
    entries = await reader.xlen(FIREHOSE)
    meter.cpu, meter.pool = {"reader": time.process_time}, None

    async def read_all() -> int:
        last, seen = "0-0", 0
        while True:
            answer = await reader.xread({FIREHOSE: last}, count=500)
            rows = answer[0][1] if answer else []
            if not rows:
                return seen
            seen += len(rows)
            last = rows[-1][0].decode()

    try:
        figures, seen = await measured(meter, max(entries, 1), idle, read_all)
    finally:
        await reader.aclose()
    return {"entries": seen, "per_entry": figures}


# Phases


async def phase(
    servers: Servers,
    state: Path,
    label: str,
    cache: bool,
    stage: Callable[[Gateway, Meter, dict[str, float]], Awaitable[list[dict[str, Any]]]],
    results: dict[str, Any],
    pooled: bool = False,
) -> None:
    """A gateway of its own for one stage (`pooled`: behind PgBouncer in transaction mode):
    warmed up, its idle rates, the stage; and, from before its start to after its stop
    (when every backend has flushed its statistics), PostgreSQL's active +
    idle-in-transaction time against the pool's connection-seconds (and PgBouncer's)."""
    session_before = await servers.stats.fetchval(SESSION_SQL)
    env: dict[str, str] = {}
    bouncer = None
    if pooled:
        bouncer = await asyncio.to_thread(PgBouncer.start, servers.database_url)
        env = {
            "DATABASE_URL": bouncer.url,
            "DATABASE_DIRECT_URL": servers.database_url,
            "SWITCHBOARD_DB_POOLER": "transaction",
        }
    gateway = Gateway(servers, label, cache, state, env)
    meter = Meter(servers)
    meter.cpu = {"gateway": lambda: cpu_s(gateway.pid)}
    meter.metrics_url = gateway.url + "/metrics"
    if bouncer is not None:
        meter.cpu["pgbouncer"] = lambda: cpu_s(bouncer.process.pid)
        meter.sources.append(lambda: bouncer_stats(bouncer))
    try:
        await asyncio.sleep(3)  # the skill index builds in the background at start
        for data_set in results["args"]["data"]:  # one of each query: plans, caches, pools
            await asyncio.to_thread(query_block, gateway, data_set, 1)
        idle = await meter.rates(IDLE_S)
        results["idle_per_s"][label] = {k: round(v, 5) for k, v in idle.items() if v}
        results["rows"] += await stage(gateway, meter, idle)
        final = await meter.begin()
    finally:
        gateway.stop()
        if bouncer is not None:
            await asyncio.to_thread(bouncer.stop)
    await asyncio.sleep(1)  # the backends' exits
    session_s = (await servers.stats.fetchval(SESSION_SQL) - session_before) / 1000
    held = {
        "gateway_pool_connection_s": round(final.get("pool_seconds", 0.0), 3),
        "postgres_active_and_idle_in_transaction_s": round(session_s, 3),
    }
    if bouncer is not None:
        held["pgbouncer_server_transaction_s"] = round(final["bouncer_xact_us"] / 1e6, 3)
    results["held_cross_check"][label] = held


async def bouncer_stats(bouncer: PgBouncer) -> dict[str, float]:
    """PgBouncer's totals for the `switchboard` database (SHOW STATS, through psql: its
    console speaks only the simple query protocol)."""
    command = ["psql", "-h", "127.0.0.1", "-p", str(bouncer.port), "-U", "postgres"]
    command += ["-d", "pgbouncer", "-A", "-F", "\t", "-P", "footer=off", "-c", "SHOW STATS"]
    shown = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    lines = (await shown.communicate())[0].decode().splitlines()
    head = lines[0].split("\t")
    totals = next(
        dict(zip(head, line.split("\t"), strict=True))
        for line in lines[1:]
        if line.startswith("switchboard\t")
    )
    return {
        "bouncer_xacts": float(totals["total_xact_count"]),
        "bouncer_xact_us": float(totals["total_xact_time"]),
        "bouncer_wait_us": float(totals["total_wait_time"]),
    }


def query_block(
    gateway: Gateway, data_set: str, runs: int
) -> list[tuple[Operation, list[Request]]]:
    """Each contract query of the data set, `runs` times."""
    tokens = gateway.tokens(DATA_SETS[data_set])
    ids = lookup_ids(gateway.http, tokens["dashboard"])
    blocks = []
    for operation in load_operations(OPERATIONS):
        variables = variables_for(operation.name, ids, dt.datetime.now(dt.UTC)) or {}
        blocks.append((operation, [(tokens[operation.client], operation, variables)] * runs))
    for _, block in blocks:
        send_all(gateway.http, block)
    return blocks


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "cpus": os.cpu_count(),
        "uptime_start": uptime(),
        "args": vars(args),
        "rows": [],
        "idle_per_s": {},
        "held_cross_check": {},
    }
    print(results["uptime_start"], file=sys.stderr)
    servers = Servers()
    await servers.start(args.data)
    state = Path(servers.pg.folder) / "gateway"
    state.mkdir()
    kept: dict[str, str] = {}

    async def writes(gateway: Gateway, meter: Meter, idle: dict[str, float]) -> list[Any]:
        rows, found = await mutation_stage(gateway, servers, meter, idle, args)
        kept.update(found)
        return rows

    async def pooled(gateway: Gateway, meter: Meter, idle: dict[str, float]) -> list[Any]:
        rows = await query_stage(gateway, meter, idle, "PgBouncer", args)
        n = max(args.mutations // 2, 2)
        return rows + (await mutation_stage(gateway, servers, meter, idle, args, "PgBouncer", n))[0]

    # Every query phase before any mutation: submitCampaign's new ACTIVE campaigns are the
    # newest, so DashboardOverview and CampaignDetail would show them afterwards.
    stages = [
        ("cache on", True, lambda g, m, i: query_stage(g, m, i, "cache on", args), False),
        ("cache off", False, lambda g, m, i: query_stage(g, m, i, "cache off", args), False),
        ("PgBouncer", False, pooled, True),
        ("mutations", False, writes, False),
        ("live", False, lambda g, m, i: live_stage(g, servers, m, i, kept, args), False),
    ]
    try:
        results["postgres"] = await servers.settings()
        await servers.stats.execute("CHECKPOINT")
        await servers.stats.execute("SELECT pg_stat_statements_reset()")
        for label, cache, stage, behind_pgbouncer in stages:
            await phase(servers, state, label, cache, stage, results, behind_pgbouncer)
        meter = Meter(servers)
        idle = await meter.rates(IDLE_S)
        results["idle_per_s"]["no gateway"] = {k: round(v, 5) for k, v in idle.items() if v}
        results["worker"] = [
            await worker_stage(servers, meter, idle, args.jobs, 0),
            await worker_stage(servers, meter, idle, args.paced_jobs, 25),
        ]
        results["relay"] = await relay_stage(servers, meter, idle, args)
        results["uptime_end"] = uptime()
        results["statements_deallocated"] = await servers.stats.fetchval(
            "SELECT dealloc FROM pg_stat_statements_info"
        )
    finally:
        await servers.close()
    return results


def tables(results: dict[str, Any]) -> str:
    """Markdown: the requests' and events' unit costs, the worker's and the relay's."""
    lines = [
        "| phase | data | operation | gateway CPU ms | PG exec + plan ms | PG CPU ms | statements "
        "(transactions) | pool connection ms (checkouts) | PgBouncer server ms | pool of 25: "
        "req/s | Redis commands | Valkey CPU µs | WAL bytes | events |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['phase']} | {r['data']} | {r['operation']} | {r.get('gateway_cpu_ms', '–')} "
            f"| {r['pg_exec_ms'] + r['pg_plan_ms']:.3f} | {r['postgres_cpu_ms']} "
            f"| {r['statements']} ({r['transactions']}) "
            f"| {r.get('connection_ms', '–')} ({r.get('checkouts', '–')}) "
            f"| {r.get('server_hold_ms', '–')} | {r.get('pool25_rps', '–')} "
            f"| {r['redis_commands']} | {r['valkey_cpu_ms'] * 1000:.0f} | {r['wal_bytes']} "
            f"| {r.get('events', '–')} |"
        )
    lines += [
        "",
        "| jobs | ms a token | jobs/s | worker CPU ms/job | PG exec + plan ms/job "
        "| PG CPU ms/job | statements/job | Redis commands/job | LLM calls/job "
        "| events/job (tenant + stream) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for w in results.get("worker", []):
        lines.append(
            f"| {w['jobs']} | {w['token_delay_ms']:g} | {w['jobs_per_s']} | {w['worker_cpu_ms']} "
            f"| {w['pg_exec_ms'] + w['pg_plan_ms']:.2f} | {w['postgres_cpu_ms']} "
            f"| {w['statements']} | {w['redis_commands']} | {w['llm_calls_per_job']} "
            f"| {w['tenant_events_per_job']} + {w['stream_events_per_job']} |"
        )
    relay = results.get("relay", {})
    if relay:
        lines += [
            "",
            "| relay | passes | events/s | pass ms p50 / p99 | relay CPU ms | PG exec + "
            "plan ms | PG CPU ms | statements | Redis commands | Valkey CPU µs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        b = relay["backlog"]
        e = b["per_event"]
        lines.append(
            f"| backlog ({b['tenant_events']} tenant + {b['stream_events']} stream events), "
            f"per event | {b['passes']} | {b['events_per_s']} "
            f"| {b['pass_ms']['p50']} / {b['pass_ms']['p99']} | {e['relay_cpu_ms']} "
            f"| {e['pg_exec_ms'] + e['pg_plan_ms']:.3f} | {e['postgres_cpu_ms']} "
            f"| {e['statements']} | {e['redis_commands']} | {e['valkey_cpu_ms'] * 1000:.1f} |"
        )
        for size in (1, 10, 100, 500):
            p = relay[f"passes of {size}"]
            f = p["per_pass"]
            lines.append(
                f"| a pass of {size} | {p['passes']} | {p['events_per_s']} "
                f"| {p['pass_ms']['p50']} / {p['pass_ms']['p99']} | {f['relay_cpu_ms']} "
                f"| {f['pg_exec_ms'] + f['pg_plan_ms']:.3f} | {f['postgres_cpu_ms']} "
                f"| {f['statements']} | {f['redis_commands']} | {f['valkey_cpu_ms'] * 1000:.1f} |"
            )
        read = relay["firehose_read"]["per_entry"]
        lines.append(
            f"| firehose read, per entry ({relay['firehose_read']['entries']}) | – | – | – "
            f"| {read['reader_cpu_ms']} | – | – | – | {read['redis_commands']} "
            f"| {read['valkey_cpu_ms'] * 1000:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="measured requests per query")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--mutations", type=int, default=100, help="of each, per data set")
    parser.add_argument("--events", type=int, default=300, help="per live-event case")
    parser.add_argument("--jobs", type=int, default=170, help="jobs at 0 ms a token")
    parser.add_argument("--paced-jobs", type=int, default=40, help="jobs at 25 ms a token")
    parser.add_argument("--relay-passes", type=int, default=100, help="passes of 1 (fewer larger)")
    parser.add_argument("--skip-bench", action="store_true", help="demo data only (no seeding)")
    arguments = parser.parse_args()
    arguments.data = ["demo"] if arguments.skip_bench else ["demo", "bench"]
    outcome = asyncio.run(main(arguments))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-capacity-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(outcome, indent=2) + "\n")
    print(tables(outcome))
    print(f"\n{outcome['uptime_start']}\n{outcome['uptime_end']}\nwritten to {out}")
