"""Single-client latency of every contract query, on the demo tenant and the bench tenant.

This script owns the gateway benchmark that perf/README.md reports. For each `query` file
under contract/operations/dashboard and /mobile (mutations and subscriptions are
skipped) and each data set, it sends the operation `--warmup` times, then `--runs` times
one after another, and reports:

- server median / p99: the gateway's own `x-response-time` header (request in → response
  built), so it excludes the client and the socket; p99 is the nearest-rank 99th percentile;
- client median: wall time of the whole HTTP round trip as this script sees it;
- SQL: the `x-sql-statements` header (statements the request ran; development mode only);
- bytes: the size of the response body.

`--executors graphql-core planned` measures both executors in one run (issue 14's before and
after): two gateways, one per `SWITCHBOARD_EXECUTOR` value, over the same PostgreSQL and
Valkey (started here from SWITCHBOARD_STATE_DIR unless DATABASE_URL / REDIS_URL are set),
each with a state folder of its own; every operation's warm-up runs on both, then its runs
alternate between them in blocks of 10, so a drifting machine load falls on both alike.
The table then has each executor's server median / p99 and their ratios (planned over
graphql-core: below 1 is faster), and the two answers' bodies are compared.

Data sets: `demo` is acme's marketer (`switchboard seed --demo`, which `serve` also does on
an empty database); `bench` is the bench tenant's marketer (`switchboard seed --bench`).
Unless `--url` is given, the script starts `switchboard serve --workers 1` on a free port
with SWITCHBOARD_STATE_DIR (default .switchboard/perf), waits for /healthz, and at the end
reports the gateway process's resident memory and stops it with SIGINT.

Run (from the repository root, in the venv):

    export SWITCHBOARD_STATE_DIR=$PWD/.switchboard/perf
    switchboard seed --demo && switchboard seed --bench     # once
    python perf/bench_operations.py --data both --json
    python perf/bench_operations.py --data both --executors graphql-core planned --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from gateway import gateway_pid, start_gateway, stop_gateway  # perf/gateway.py, beside this script
from graphql import OperationDefinitionNode, OperationType, parse
from stats import nearest_rank  # perf/stats.py, beside this script

from domain.ids import to_global_id
from switchboard.devdata.seed import stable_id
from switchboard.edge.auth import issue_token
from switchboard.infra.embedded import start_services
from switchboard.settings import EXECUTORS, Settings

REPO = Path(__file__).resolve().parent.parent
OPERATIONS = REPO / "contract" / "operations"
RESULTS = REPO / "perf" / "results"
DATA_SETS = {"demo": "acme", "bench": "bench"}
CLIENTS = ("dashboard", "mobile")
BLOCK = 10  # runs in a row on one gateway when two alternate

LOOKUP = """
query BenchLookup {
  tenant {
    agents { id role }
    campaigns(first: 1, status: ACTIVE) { edges { node { id } } }
  }
  approvalQueue(first: 1) { edges { node { id } } }
}
"""


@dataclass(frozen=True)
class Operation:
    client: str  # dashboard | mobile | agent: the folder, and the token's audience
    name: str
    document: str
    persisted_id: str | None = (
        None  # mobile operations go by their manifest id, as the app sends them
    )


@dataclass
class Result:
    data_set: str
    client: str
    operation: str
    runs: int
    server_median_ms: float
    server_p99_ms: float
    client_median_ms: float
    sql_statements: str  # one number, or "min–max" if it varied between runs
    response_bytes: int
    errors: list[str] = field(default_factory=list)
    executor: str = "planned"


@dataclass
class Target:
    """One gateway under measurement: its executor, client and (if started here) process."""

    executor: str
    http: httpx.Client
    process: subprocess.Popen[bytes] | None = None
    rss_mb: dict[str, float] = field(default_factory=dict)


@dataclass
class Samples:
    server: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)
    statements: set[int] = field(default_factory=set)
    sizes: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    body: bytes = b""


def load_operations(
    root: Path,
    kinds: Collection[OperationType] = (OperationType.QUERY,),
    clients: Sequence[str] = CLIENTS,
) -> list[Operation]:
    """The operations of `kinds` in the folders of `clients` (mobile ones with their
    manifest id)."""
    manifest = orjson.loads((root / "mobile" / "persisted-query-manifest.json").read_bytes())
    persisted = {entry["name"]: entry["id"] for entry in manifest["operations"]}
    operations = []
    for client in clients:
        for path in sorted((root / client).glob("*.graphql")):
            document = path.read_text()
            definitions = [
                d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)
            ]
            if len(definitions) != 1 or definitions[0].operation not in kinds:
                continue
            name = definitions[0].name.value if definitions[0].name else path.stem
            operations.append(
                Operation(
                    client, name, document, persisted.get(name) if client == "mobile" else None
                )
            )
    return operations


def tokens_for(slug: str, settings: Settings) -> dict[str, str]:
    user = to_global_id("User", stable_id("user", f"marketer@{slug}.example"))
    tenant = to_global_id("Tenant", stable_id(slug, "tenant"))
    return {client: issue_token(settings, user, tenant, client) for client in CLIENTS}


def post(
    http: httpx.Client, token: str, operation: Operation | None, variables: dict[str, Any]
) -> httpx.Response:
    body: dict[str, Any] = {"variables": variables}
    if operation and operation.persisted_id:
        body["extensions"] = {
            "persistedQuery": {"version": 1, "sha256Hash": operation.persisted_id}
        }
    else:
        body["query"] = operation.document if operation else LOOKUP
        body["operationName"] = operation.name if operation else None
    return http.post(
        "/graphql",
        content=orjson.dumps(body),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )


def lookup_ids(http: httpx.Client, token: str) -> dict[str, str]:
    """IDs that the `node(id:)` operations need, from the tenant's own data."""
    response = post(http, token, None, {})
    payload = response.json()
    if response.status_code != 200 or payload.get("errors"):
        raise RuntimeError(f"ID look-up failed ({response.status_code}): {response.text[:500]}")
    data = payload["data"]
    agents = {a["role"]: a["id"] for a in data["tenant"]["agents"]}
    campaigns = data["tenant"]["campaigns"]["edges"]
    approvals = data["approvalQueue"]["edges"]
    if not campaigns or not approvals:
        raise RuntimeError("The tenant needs an ACTIVE campaign and a pending approval.")
    return {
        "campaign": campaigns[0]["node"]["id"],
        "agent": agents["COPYWRITER"],
        "approval": approvals[0]["node"]["id"],
    }


def variables_for(name: str, ids: dict[str, str], now: dt.datetime) -> dict[str, Any] | None:
    """The variables each operation is sent with; None for one this script does not know."""
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month_end = (month_start + dt.timedelta(days=32)).replace(day=1)
    known: dict[str, dict[str, Any]] = {
        "DashboardOverview": {
            "monthStart": month_start.isoformat(),
            "monthEnd": month_end.isoformat(),
        },
        "SpendDashboard": {
            "from": (now - dt.timedelta(days=30)).isoformat(),
            "to": now.isoformat(),
        },
        "SkillSearch": {"query": "headline formulas for blog posts"},
        "CampaignDetail": {"id": ids["campaign"]},
        "AgentActivity": {"id": ids["agent"]},
        "MobileApprovalDetail": {"id": ids["approval"]},
        "ApprovalQueue": {},
        "MobileApprovalQueue": {},
        "MobileHome": {},
    }
    return known.get(name)


def server_ms(response: httpx.Response) -> float:
    return float(response.headers["x-response-time"].removesuffix("ms"))


def first_answer(
    http: httpx.Client, token: str, operation: Operation, variables: dict[str, Any]
) -> Samples:
    samples = Samples()
    first = post(http, token, operation, variables)
    samples.body = first.content
    payload = first.json()
    if first.status_code != 200 or payload.get("errors"):
        samples.errors = [
            f"{e.get('extensions', {}).get('code')}: {e.get('message')}"
            for e in payload.get("errors", [])
        ] or [f"HTTP {first.status_code}"]
    return samples


def run_once(
    http: httpx.Client,
    token: str,
    operation: Operation,
    variables: dict[str, Any],
    samples: Samples,
) -> None:
    started = time.perf_counter()
    response = post(http, token, operation, variables)
    samples.client.append((time.perf_counter() - started) * 1000)
    samples.server.append(server_ms(response))
    samples.statements.add(int(response.headers.get("x-sql-statements", -1)))
    samples.sizes.add(len(response.content))
    if response.status_code != 200 and not samples.errors:
        samples.errors.append(f"HTTP {response.status_code} during the runs")


def measure(
    targets: list[Target],
    token: str,
    operation: Operation,
    variables: dict[str, Any],
    data_set: str,
    warmup: int,
    runs: int,
) -> list[Result]:
    """Warm-up on every target, then `runs` on each, alternating in blocks of BLOCK."""
    samples = [first_answer(t.http, token, operation, variables) for t in targets]
    for target in targets:
        for _ in range(warmup):
            post(target.http, token, operation, variables)
    done = 0
    while done < runs:
        block = min(BLOCK, runs - done)
        for target, sample in zip(targets, samples, strict=True):
            for _ in range(block):
                run_once(target.http, token, operation, variables, sample)
        done += block
    if len(targets) > 1 and len({normalise(s.body) for s in samples}) > 1:
        for sample in samples:
            sample.errors.append("the executors answered differently")
    return [
        summarise(sample, target.executor, operation, data_set, runs)
        for target, sample in zip(targets, samples, strict=True)
    ]


def normalise(body: bytes) -> bytes:
    """The body with what legitimately differs between two gateways' answers left out: none
    of the contract's queries has such a field today, so the body as is."""
    return body


def summarise(
    samples: Samples, executor: str, operation: Operation, data_set: str, runs: int
) -> Result:
    server = sorted(samples.server)
    statements = samples.statements
    sql = f"{min(statements)}" if len(statements) == 1 else f"{min(statements)}–{max(statements)}"
    return Result(
        data_set=data_set,
        client=operation.client,
        operation=operation.name,
        runs=runs,
        server_median_ms=round(statistics.median(server), 2),
        server_p99_ms=round(nearest_rank(server, 0.99), 2),
        client_median_ms=round(statistics.median(samples.client), 2),
        sql_statements="n/a" if statements == {-1} else sql,
        response_bytes=max(samples.sizes),
        errors=samples.errors,
        executor=executor,
    )


def markdown(results: list[Result]) -> str:
    lines = [
        "| data | operation | server median ms | server p99 ms | client median ms "
        "| SQL statements | response bytes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        name = r.operation + (f" (ERROR: {'; '.join(r.errors)[:120]})" if r.errors else "")
        lines.append(
            f"| {r.data_set} | {name} | {r.server_median_ms:.2f} | {r.server_p99_ms:.2f} "
            f"| {r.client_median_ms:.2f} | {r.sql_statements} | {r.response_bytes:,} |"
        )
    return "\n".join(lines)


def comparison(results: list[Result], before: str, after: str) -> str:
    """One row per data set and operation: both executors side by side, and after/before."""
    lines = [
        f"| data | operation | {before} median / p99 ms | {after} median / p99 ms "
        "| median ratio | p99 ratio | SQL statements | response bytes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_key = {(r.data_set, r.operation, r.executor): r for r in results}
    for r in results:
        if r.executor != after:
            continue
        b = by_key[(r.data_set, r.operation, before)]
        name = r.operation + (f" (ERROR: {'; '.join(r.errors)[:120]})" if r.errors else "")
        lines.append(
            f"| {r.data_set} | {name} | {b.server_median_ms:.2f} / {b.server_p99_ms:.2f} "
            f"| {r.server_median_ms:.2f} / {r.server_p99_ms:.2f} "
            f"| {r.server_median_ms / b.server_median_ms:.2f} "
            f"| {r.server_p99_ms / b.server_p99_ms:.2f} "
            f"| {b.sql_statements} / {r.sql_statements} | {r.response_bytes:,} |"
        )
    return "\n".join(lines)


def start_targets(executors: list[str], state_dir: Path) -> tuple[list[Target], Any | None]:
    """A gateway per executor; with more than one, over servers started here (or those of
    DATABASE_URL / REDIS_URL), each gateway in a state folder of its own (their metrics
    folders must not be shared)."""
    services = None
    env: dict[str, str] = {}
    if len(executors) > 1:
        services = start_services(
            state_dir, os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
        )
        env = {"DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
    targets: list[Target] = []
    try:
        for executor in executors:
            folder = state_dir / f"gateway-{executor}" if services else state_dir
            log = Path(tempfile.gettempdir()) / f"switchboard-bench-{executor}-{os.getpid()}.log"
            print(f"Starting the {executor} gateway (state {folder}, log {log})…", file=sys.stderr)
            process, port = start_gateway(
                folder, log, {**env, "SWITCHBOARD_EXECUTOR": executor}, extra=("--no-worker",)
            )
            target = Target(
                executor, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60), process
            )
            target.rss_mb["start"] = rss_mb(target)
            targets.append(target)
    except BaseException:
        stop_targets(targets, services)
        raise
    return targets, services


def rss_mb(target: Target) -> float:
    assert target.process is not None
    return psutil.Process(gateway_pid(target.process)).memory_info().rss / 2**20


def stop_targets(targets: list[Target], services: Any | None) -> None:
    for target in targets:
        target.http.close()
        if target.process:
            stop_gateway(target.process)
    if services is not None:
        services.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", choices=["demo", "bench", "both"], default="both")
    parser.add_argument("--runs", type=int, default=200, help="measured runs per operation")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured runs before them")
    parser.add_argument("--url", help="use this running gateway instead of starting one")
    parser.add_argument("--operations", type=Path, default=OPERATIONS)
    parser.add_argument("--only", nargs="*", help="operation names to run (default: all)")
    parser.add_argument("--json", action="store_true", help="also write perf/results/*.json")
    parser.add_argument(
        "--executors",
        nargs="+",
        choices=EXECUTORS,
        default=["planned"],
        help="SWITCHBOARD_EXECUTOR of each gateway; two: both measured, interleaved",
    )
    args = parser.parse_args(argv)

    state_dir = Path(os.environ.get("SWITCHBOARD_STATE_DIR", REPO / ".switchboard" / "perf"))
    os.environ["SWITCHBOARD_STATE_DIR"] = str(state_dir)
    settings = Settings.from_env()
    operations = [
        op for op in load_operations(args.operations) if not args.only or op.name in args.only
    ]
    data_sets = ["demo", "bench"] if args.data == "both" else [args.data]

    targets: list[Target] = []
    services = None
    if args.url is None:
        targets, services = start_targets(args.executors, state_dir)
    else:
        targets = [Target(args.executors[0], httpx.Client(base_url=args.url, timeout=60))]
    results: list[Result] = []
    try:
        now = dt.datetime.now(dt.UTC)
        for data_set in data_sets:
            tokens = tokens_for(DATA_SETS[data_set], settings)
            ids = lookup_ids(targets[0].http, tokens["dashboard"])
            for operation in operations:
                variables = variables_for(operation.name, ids, now)
                if variables is None:
                    print(f"skipped {operation.name}: no variables known", file=sys.stderr)
                    continue
                measured = measure(
                    targets,
                    tokens[operation.client],
                    operation,
                    variables,
                    data_set,
                    args.warmup,
                    args.runs,
                )
                results.extend(measured)
                medians = ", ".join(f"{r.executor} {r.server_median_ms} ms" for r in measured)
                print(f"{data_set:<6} {operation.name:<22} median {medians}", file=sys.stderr)
        for target in targets:
            if target.process:
                target.rss_mb["end"] = rss_mb(target)
    finally:
        stop_targets(targets, services)

    if len(targets) > 1:
        print(comparison(results, targets[0].executor, targets[-1].executor))
    else:
        print(markdown(results))
    for target in targets:
        if target.rss_mb:
            print(
                f"\nGateway process RSS ({target.executor}): {target.rss_mb['start']:.0f} MB "
                f"after start-up, {target.rss_mb['end']:.0f} MB after the benchmark."
            )
    if args.json:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS / f"bench-operations-{stamp}.json"
        out.write_bytes(
            orjson.dumps(
                {
                    "at": stamp,
                    "runs": args.runs,
                    "warmup": args.warmup,
                    "executors": [t.executor for t in targets],
                    "rss_mb": {t.executor: t.rss_mb for t in targets},
                    "load_avg_end": os.getloadavg(),
                    "results": [asdict(r) for r in results],
                },
                option=orjson.OPT_INDENT_2,
            )
        )
        print(f"\nWrote {out}", file=sys.stderr)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
