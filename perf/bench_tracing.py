"""What tracing costs a request: DashboardOverview with tracing on against tracing off.

This script owns the tracing-overhead benchmark that perf/README.md reports. One process
runs the gateway in-process (httpx's ASGI transport: no sockets, so the figures are the
gateway's own time, middleware included) and sends DashboardOverview as acme's marketer
(`--data demo`, the default) or bench's (`--data bench`, after `switchboard seed --bench`),
one request at a time. Three tracing modes take turns in the same process, in interleaved
rounds (`--rounds` rounds of `--batch` requests per mode, in a shuffled order each round)
so that drift in the machine's load falls on all of them alike:

- off: no tracer provider at all (OTEL_SDK_DISABLED=true): no spans, no trace ids;
- ids: the default when nothing is exported: root spans with a sampler that records
  nothing, so logs and jobs get trace ids; no child spans;
- on: every span recorded (HTTP request, GraphQL operation, each SQL statement, each
  Redis command) and exported as the gateway does it: the SDK's BatchSpanProcessor hands
  them to the export process (switchboard/observability/export.py), which sends them over
  OTLP/HTTP to a local sink process that accepts and discards them. `--exporter inline`
  encodes and sends in the gateway's process instead (SWITCHBOARD_OTLP_INLINE=1), and
  `--exporter none` drops them at once;
- sampled: as `on`, but one trace in ten recorded (OTEL_TRACES_SAMPLER=
  parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1), a common production setting.

Reported per mode, each also as a ratio to `off`:
- answer: from the request's start to the last byte of the answer handed to the server
  (what a client waits for; spans of statements and commands are made after it);
- done: until the request's task has finished (the client-side round trip here, since
  the ASGI transport returns only then; it includes the post-answer span work);
- CPU: the process's CPU time per request (all threads: the span processor's export
  thread too), the fairest measure of cost on a busy machine.
The target is on/off under 1.05 at the median time to answer.

Run (from the repository root, in the venv; it starts the embedded servers under
SWITCHBOARD_STATE_DIR, default .switchboard/perf, and seeds the demo data if empty):

    python perf/bench_tracing.py                  # --rounds 200 --batch 5 --data demo
    python perf/bench_tracing.py --data bench --json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.server
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from asgi_lifespan import LifespanManager
from gateway import free_port  # perf/gateway.py, beside this script
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    TraceIdRatioBased,
)
from sqlalchemy.ext.asyncio import create_async_engine

from domain.ids import to_global_id
from switchboard.app import create_app
from switchboard.devdata.seed import database_is_empty, seed_demo, stable_id
from switchboard.edge.auth import issue_token
from switchboard.infra.embedded import start_services
from switchboard.infra.migrate import upgrade_to_head
from switchboard.observability import tracing
from switchboard.observability.export import ForwardingSpanExporter
from switchboard.settings import Settings

REPO = Path(__file__).resolve().parent.parent
OPERATION = REPO / "contract/operations/dashboard/DashboardOverview.graphql"
RESULTS = REPO / "perf" / "results"
DATA_SETS = {"demo": "acme", "bench": "bench"}
MODES = ("off", "ids", "on", "sampled")


class AnswerClock:
    """ASGI wrapper: when the last byte of the answer was handed to the server."""

    def __init__(self, app: Any) -> None:
        self.app, self.answered_at = app, 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def timed(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.answered_at = time.perf_counter()

        await self.app(scope, receive, timed)


class CountingExporter(SpanExporter):
    """Counts spans, then exports them as `how` says: `process` (the gateway's way, through
    the export process), `inline` (encoded and sent in this process) or `none`."""

    def __init__(self, how: str) -> None:
        self.spans = 0
        self.inner: SpanExporter | None = None
        if how == "process":
            self.inner = ForwardingSpanExporter(Resource({"service.name": "bench"}))
        elif how == "inline":
            self.inner = OTLPSpanExporter()

    def child_cpu_s(self) -> float:
        """CPU time of the export process so far (user + system), if there is one."""
        child = getattr(self.inner, "_child", None)
        if child is None:
            return 0.0
        times = psutil.Process(child.pid).cpu_times()
        return float(times.user + times.system)

    def wait_until_child_idle(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        before = self.child_cpu_s()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.child_cpu_s()
            if now - before < 0.005:
                return
            before = now

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return self.inner.export(spans) if self.inner else SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self.inner:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def run_sink(port: int) -> None:
    """An OTLP/HTTP receiver that accepts every export and keeps nothing."""

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()


def wait_for_port(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def prepare(database_url: str, data: str) -> None:
    await asyncio.to_thread(upgrade_to_head, database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            if data == "demo" and await database_is_empty(conn):
                await seed_demo(conn)
    finally:
        await engine.dispose()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    state_dir = Path(os.environ.get("SWITCHBOARD_STATE_DIR", REPO / ".switchboard/perf"))
    running = start_services(state_dir, os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL"))
    sink = None
    try:
        await prepare(running.database_url, args.data)
        settings = Settings.from_env(
            database_url=running.database_url,
            redis_url=running.redis_url,
            rate_limit=False,  # thousands of requests from one tenant in a few minutes
            log_level="WARNING",
        )
        if args.exporter != "none":
            port = free_port()
            sink = subprocess.Popen([sys.executable, __file__, "--sink", str(port)])
            wait_for_port(port)
            # Read by OTLP exporters, the export process's included.
            os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"http://127.0.0.1:{port}/v1/traces"
        exporter = CountingExporter(args.exporter)
        providers = {
            "off": None,
            "ids": tracing.build_provider(sampler=ALWAYS_OFF),
            "on": tracing.build_provider([BatchSpanProcessor(exporter)], sampler=ALWAYS_ON),
            "sampled": tracing.build_provider(
                [BatchSpanProcessor(CountingExporter(args.exporter))],
                sampler=ParentBased(TraceIdRatioBased(0.1)),
            ),
        }
        app = create_app(settings)
        clock = AnswerClock(app)
        slug = DATA_SETS[args.data]
        token = issue_token(
            settings,
            to_global_id("User", stable_id("user", f"marketer@{slug}.example")),
            to_global_id("Tenant", stable_id(slug, "tenant")),
            "dashboard",
        )
        now = dt.datetime.now(dt.UTC)
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        body = orjson.dumps(
            {
                "query": OPERATION.read_text(),
                "operationName": "DashboardOverview",
                "variables": {
                    "monthStart": month_start.isoformat(),
                    "monthEnd": (month_start + dt.timedelta(days=32)).replace(day=1).isoformat(),
                },
            }
        )
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        cpu_times: dict[str, list[float]] = {mode: [] for mode in MODES}
        done_times: dict[str, list[float]] = {mode: [] for mode in MODES}
        statements: set[str] = set()
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=clock)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:

                async def send() -> tuple[float, float, float]:
                    cpu_started = time.process_time()
                    started = time.perf_counter()
                    response = await client.post("/graphql", content=body, headers=headers)
                    done = time.perf_counter() - started
                    cpu = time.process_time() - cpu_started
                    payload = response.json()
                    if response.status_code != 200 or payload.get("errors"):
                        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
                    statements.add(response.headers.get("x-sql-statements", "?"))
                    return clock.answered_at - started, done, cpu

                for mode in MODES:
                    tracing.install(providers[mode])
                    for _ in range(args.warmup):
                        await send()
                on_warm = providers["on"]
                assert on_warm is not None
                on_warm.force_flush()  # the warm-up's spans are out, the export process started
                exporter.wait_until_child_idle()  # its start-up is not the spans' cost
                exported_before, export_cpu_before = exporter.spans, exporter.child_cpu_s()
                order = list(MODES)
                shuffle = random.Random(7)
                for _ in range(args.rounds):
                    shuffle.shuffle(order)
                    for mode in order:
                        tracing.install(providers[mode])
                        for _ in range(args.batch):
                            answered, done, cpu = await send()
                            times[mode].append(answered)
                            done_times[mode].append(done)
                            cpu_times[mode].append(cpu)
                tracing.install(None)
        on_provider = providers["on"]
        assert on_provider is not None
        on_provider.force_flush()
        spans_per_request = (exporter.spans - exported_before) / len(times["on"])
        export_cpu_ms = (exporter.child_cpu_s() - export_cpu_before) * 1000 / len(times["on"])
        for provider in providers.values():
            if provider is not None:
                provider.shutdown()
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait()
        running.stop()

    summary: dict[str, Any] = {
        "data": args.data,
        "exporter": args.exporter,
        "rounds": args.rounds,
        "batch": args.batch,
        "sql_statements": sorted(statements),
        "spans_per_request_on": round(spans_per_request, 2),
        "export_process_cpu_ms_per_request_on": round(export_cpu_ms, 3),
        "modes": {},
    }

    def ms(values: list[float], how: str) -> float:
        if how == "median":
            return statistics.median(values) * 1000
        if how == "p99":
            return nearest_rank(values, 0.99) * 1000
        return statistics.fmean(values) * 1000

    for mode in MODES:
        row = {
            "requests": len(times[mode]),
            "answer_median_ms": ms(times[mode], "median"),
            "answer_p99_ms": ms(times[mode], "p99"),
            "answer_mean_ms": ms(times[mode], "mean"),
            "done_median_ms": ms(done_times[mode], "median"),
            "cpu_mean_ms": ms(cpu_times[mode], "mean"),
        }
        row["answer_median_ratio"] = row["answer_median_ms"] / ms(times["off"], "median")
        row["answer_p99_ratio"] = row["answer_p99_ms"] / ms(times["off"], "p99")
        row["done_median_ratio"] = row["done_median_ms"] / ms(done_times["off"], "median")
        row["cpu_ratio"] = row["cpu_mean_ms"] / ms(cpu_times["off"], "mean")
        summary["modes"][mode] = {k: round(v, 4) for k, v in row.items()}
    return summary


def report(summary: dict[str, Any]) -> None:
    print(
        f"\nDashboardOverview, {summary['data']} data, exporter {summary['exporter']}: "
        f"{summary['rounds']} rounds x {summary['batch']} requests per mode; "
        f"SQL statements {', '.join(summary['sql_statements'])}; "
        f"{summary['spans_per_request_on']} spans per request when on, and "
        f"{summary['export_process_cpu_ms_per_request_on']} ms of the export process's CPU\n"
    )
    print(
        "| mode | requests | answer median ms | answer p99 ms | done median ms | CPU ms "
        "| answer median / off | answer p99 / off | done median / off | CPU / off |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode, m in summary["modes"].items():
        print(
            f"| {mode} | {m['requests']} | {m['answer_median_ms']:.2f} | "
            f"{m['answer_p99_ms']:.2f} | {m['done_median_ms']:.2f} | {m['cpu_mean_ms']:.2f} | "
            f"{m['answer_median_ratio']:.3f} | {m['answer_p99_ratio']:.3f} | "
            f"{m['done_median_ratio']:.3f} | {m['cpu_ratio']:.3f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=sorted(DATA_SETS), default="demo")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--exporter", choices=["process", "inline", "none"], default="process")
    parser.add_argument("--json", action="store_true", help="also write perf/results/*.json")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink(args.sink)
        return 0
    summary = asyncio.run(bench(args))
    report(summary)
    if args.json:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS / f"tracing-{summary['data']}-{stamp}.json"
        path.write_text(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        print(f"\nwrote {path}")
    ratio = summary["modes"]["on"]["answer_median_ratio"]
    print(f"\ntracing on / off, median time to answer: {ratio:.3f} (target < 1.05)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
