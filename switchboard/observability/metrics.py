"""Prometheus metrics: every instrument the gateway exposes at `/metrics`, and the exposition.

This module owns the names, labels, buckets and multiprocess modes of all metrics (the
table below is the list; `ops/` builds its dashboard and alert rules on these names and
`tests/integration/test_observability_ops.py` checks that every name they use is defined here). The
helpers that feed them live with their concept (`operations`, `database`, `jobs`, `live`,
`llm`, `cache`, `middleware`).

| metric | type | labels |
| --- | --- | --- |
| `switchboard_http_requests_total` | counter | route, method, status |
| `switchboard_http_requests_in_progress` | gauge | – |
| `switchboard_websocket_connections_open` | gauge | – |
| `switchboard_graphql_request_duration_seconds` | histogram | operation, type, audience |
| `switchboard_graphql_errors_total` | counter | operation, code |
| `switchboard_cache_requests_total` | counter | cache, result (hit, miss) |
| `switchboard_execution_fallbacks_total` | counter | reason (operations graphql-core ran) |
| `switchboard_db_statement_duration_seconds` | histogram | operation (SELECT, INSERT, …) |
| `switchboard_db_pool_connections_in_use` | gauge | – |
| `switchboard_db_pool_connections_open` | gauge | – |
| `switchboard_db_pool_requests_waiting` | gauge | – |
| `switchboard_db_pool_checkouts_total` | counter | – |
| `switchboard_db_pool_connection_seconds_total` | counter | – |
| `switchboard_db_reads_total` | counter | target (primary, replica), reason |
| `switchboard_db_replica_lag_seconds` | gauge | replica |
| `switchboard_db_replica_usable` | gauge | replica (1 used, 0 skipped) |
| `switchboard_job_wait_seconds` | histogram | role, priority |
| `switchboard_job_run_seconds` | histogram | role, priority |
| `switchboard_jobs_finished_total` | counter | role, priority, outcome |
| `switchboard_jobs_in_progress` | gauge | role |
| `switchboard_job_dead_letters_total` | counter | task, role |
| `switchboard_subscriptions_open` | gauge | operation |
| `switchboard_subscription_events_total` | counter | operation |
| `switchboard_live_event_lag_seconds` | histogram | – |
| `switchboard_live_streams_open` | gauge | transport (sse, multipart) |
| `switchboard_live_stream_events_total` | counter | transport |
| `switchboard_live_resumes_total` | counter | transport (websocket, sse, multipart) |
| `switchboard_live_stream_closes_total` | counter | transport, reason |
| `switchboard_live_sse_forwards_total` | counter | outcome (answered, gone, timeout, unavailable) |
| `switchboard_llm_cost_usd_total` | counter | tenant, agent, model |
| `switchboard_llm_calls_total` | counter | tenant, agent, model |
| `switchboard_llm_tokens_total` | counter | tenant, agent, model, kind (input, output) |
| `switchboard_llm_time_to_first_token_seconds` | histogram | agent, model |
| `switchboard_process_restarts_total` | counter | process (gateway, job_worker) |

- `operation` of the GraphQL metrics is the operation's name; `anonymous` for an unnamed
  one, `unknown` when the request never got as far as a document (bad JSON, refused
  token), and `other` past MAX_OPERATION_NAMES distinct names in one process (clients
  choose names, so they are capped). `audience` is the token's `aud`, `none` without one.
- `switchboard_graphql_errors_total` counts requests whose response carried that code,
  once per request and code; the error rate is its INTERNAL_SERVER_ERROR rate over the
  duration histogram's `_count` rate.
- Histogram buckets hold the alert thresholds exactly (0.3 s and 1 s for the API, 20 ms
  and 100 ms for PostgreSQL, 30 s and 300 s for queue wait).

Several processes: prometheus_client's multiprocess mode. `switchboard serve` empties
`<state dir>/prometheus/` and points PROMETHEUS_MULTIPROC_DIR at it before anything
imports prometheus_client (`prepare_multiprocess_dir`; it executes itself again to do so);
every process it runs (the gateway and job workers, however many, and `serve` itself) writes its
values to memory-mapped files there, and `/metrics`, whichever worker answers it, adds up
all of them. A standalone `switchboard worker` (no gateway beside it) serves its own on
127.0.0.1:SWITCHBOARD_WORKER_METRICS_PORT (`serve_metrics`). Gauges are `livesum` (the sum over live
processes; the read replicas' are `livemax` and `livemin`, since each process polls them
itself): a worker marks its files dead when it shuts down (`process_exiting`), and a
scrape marks dead the files of workers that died without shutting down. To run uvicorn or
gunicorn with several workers yourself, set PROMETHEUS_MULTIPROC_DIR to a folder that is
emptied at every start. The variable must be set before this module is first imported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_OPERATION_NAMES = 200

API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUEUE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

# HTTP and GraphQL
HTTP_REQUESTS = Counter(
    "switchboard_http_requests",
    "HTTP requests answered, by route, method and status.",
    ["route", "method", "status"],
)
HTTP_IN_PROGRESS = Gauge(
    "switchboard_http_requests_in_progress",
    "HTTP requests being answered now.",
    multiprocess_mode="livesum",
)
WEBSOCKETS_OPEN = Gauge(
    "switchboard_websocket_connections_open",
    "Websocket connections open now.",
    multiprocess_mode="livesum",
)
GRAPHQL_DURATION = Histogram(
    "switchboard_graphql_request_duration_seconds",
    "Time to answer a GraphQL request over HTTP, by operation name, type and token audience.",
    ["operation", "type", "audience"],
    buckets=API_BUCKETS,
)
GRAPHQL_ERRORS = Counter(
    "switchboard_graphql_errors",
    "GraphQL requests whose response carried an error with this code (once per request).",
    ["operation", "code"],
)
CACHE_REQUESTS = Counter(
    "switchboard_cache_requests",
    "Cache look-ups by cache and result (hit or miss).",
    ["cache", "result"],
)
EXECUTION_FALLBACKS = Counter(
    "switchboard_execution_fallbacks",
    "Operations executed by graphql-core instead of the planned executor, by reason.",
    ["reason"],
)

# Database
DB_STATEMENT_DURATION = Histogram(
    "switchboard_db_statement_duration_seconds",
    "Time of one SQL statement as the gateway sees it, by its first keyword.",
    ["operation"],
    buckets=DB_BUCKETS,
)
DB_POOL_IN_USE = Gauge(
    "switchboard_db_pool_connections_in_use",
    "Pooled database connections checked out now.",
    multiprocess_mode="livesum",
)
DB_POOL_OPEN = Gauge(
    "switchboard_db_pool_connections_open",
    "Database connections the pools hold open (in use or idle).",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "switchboard_db_pool_requests_waiting",
    "Requests waiting for a pooled database connection now.",
    multiprocess_mode="livesum",
)
# Their ratio is how long a checkout holds a connection; the seconds' rate over the pool's
# size is how busy the pool is (perf/bench_capacity.py reads both per request).
DB_POOL_CHECKOUTS = Counter(
    "switchboard_db_pool_checkouts",
    "Pooled database connections checked out (a read, a transaction, a relay pass).",
)
DB_POOL_CONNECTION_SECONDS = Counter(
    "switchboard_db_pool_connection_seconds",
    "Seconds pooled database connections were checked out, from checkout to checkin, summed.",
)
# Read replicas (switchboard/infra/replicas.py): every process polls them itself, so the
# gauges take the worst process's view rather than a sum.
DB_READS = Counter(
    "switchboard_db_reads",
    "Read-side statements by where they ran and why (replica: caught_up; primary: "
    "no_replica, own_write, unknown_writes, replica_failed).",
    ["target", "reason"],
)
DB_REPLICA_LAG = Gauge(
    "switchboard_db_replica_lag_seconds",
    "How long the replica has been missing WAL the primary had (0: it has replayed all).",
    ["replica"],
    multiprocess_mode="livemax",
)
DB_REPLICA_USABLE = Gauge(
    "switchboard_db_replica_usable",
    "1 while reads may go to the replica, 0 while it is skipped (lagging or unreachable).",
    ["replica"],
    multiprocess_mode="livemin",
)

# Jobs
JOB_WAIT = Histogram(
    "switchboard_job_wait_seconds",
    "Time from a job's enqueue to the start of its run, by agent role and priority.",
    ["role", "priority"],
    buckets=QUEUE_BUCKETS,
)
JOB_RUN = Histogram(
    "switchboard_job_run_seconds",
    "Time a job ran, by agent role and priority.",
    ["role", "priority"],
    buckets=RUN_BUCKETS,
)
JOBS_FINISHED = Counter(
    "switchboard_jobs_finished",
    "Job runs finished, by role, priority and outcome (ok, error, retry, cancelled).",
    ["role", "priority", "outcome"],
)
JOBS_IN_PROGRESS = Gauge(
    "switchboard_jobs_in_progress",
    "Jobs running now, by agent role.",
    ["role"],
    multiprocess_mode="livesum",
)
JOB_DEAD_LETTERS = Counter(
    "switchboard_job_dead_letters",
    "Jobs that exhausted their retries and went to dead-letter handling.",
    ["task", "role"],
)

# Subscriptions
SUBSCRIPTIONS_OPEN = Gauge(
    "switchboard_subscriptions_open",
    "GraphQL subscriptions open now, by operation.",
    ["operation"],
    multiprocess_mode="livesum",
)
SUBSCRIPTION_EVENTS = Counter(
    "switchboard_subscription_events",
    "Events delivered to subscribers (one per subscriber reached), by operation.",
    ["operation"],
)
LIVE_EVENT_LAG = Histogram(
    "switchboard_live_event_lag_seconds",
    "From an event's change (its transaction's time) to its hand-over to local subscribers.",
    buckets=API_BUCKETS,
)
LIVE_STREAMS_OPEN = Gauge(
    "switchboard_live_streams_open",
    "HTTP event streams open now (SSE, multipart), by transport.",
    ["transport"],
    multiprocess_mode="livesum",
)
LIVE_STREAM_EVENTS = Counter(
    "switchboard_live_stream_events",
    "Events written to HTTP event streams, by transport.",
    ["transport"],
)
LIVE_RESUMES = Counter(
    "switchboard_live_resumes",
    "Subscriptions that resumed from a position (`after`, SSE's Last-Event-ID), by transport.",
    ["transport"],
)
LIVE_STREAM_CLOSES = Counter(
    "switchboard_live_stream_closes",
    "HTTP event streams ended, by transport and reason (client, complete, TOKEN_EXPIRED, "
    "TOO_SLOW, GOING_AWAY).",
    ["transport", "reason"],
)
LIVE_SSE_FORWARDS = Counter(
    "switchboard_live_sse_forwards",
    "SSE single connection operations sent on to the gateway process holding their stream, "
    "by outcome (answered, gone, timeout, unavailable).",
    ["outcome"],
)

# LLM
LLM_COST = Counter(
    "switchboard_llm_cost_usd",
    "LLM spend in US dollars, by tenant, agent role and model.",
    ["tenant", "agent", "model"],
)
LLM_CALLS = Counter(
    "switchboard_llm_calls",
    "LLM calls recorded, by tenant, agent role and model.",
    ["tenant", "agent", "model"],
)
LLM_TOKENS = Counter(
    "switchboard_llm_tokens",
    "LLM tokens, by tenant, agent role, model and kind (input or output).",
    ["tenant", "agent", "model", "kind"],
)
LLM_FIRST_TOKEN = Histogram(
    "switchboard_llm_time_to_first_token_seconds",
    "Time from an activity's dispatch to the first token of its model's answer.",
    ["agent", "model"],
    buckets=FIRST_TOKEN_BUCKETS,
)

# Processes `switchboard serve` supervises (switchboard/processes/supervisor.py); counted by `serve`
# itself, whose file in the multiprocess folder every gateway's /metrics reads.
PROCESS_RESTARTS = Counter(
    "switchboard_process_restarts",
    "Child processes of `switchboard serve` started again after they exited, by process.",
    ["process"],
)


class CappedLabel:
    """Values of a label that callers choose (operation names, model names), as given up to
    `limit` distinct ones in this process and `other` beyond, so the series stay bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return "other"
        self.seen.add(value)
        return value


_operation_names = CappedLabel(MAX_OPERATION_NAMES)


def operation_label(name: str | None) -> str:
    """The `operation` label for a client-chosen operation name, with cardinality capped."""
    return _operation_names(name) if name else "anonymous"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: Path, keep_pid: int | None = None) -> None:
    """Empty `path` of metric files (but those of `keep_pid`) and export it as
    PROMETHEUS_MULTIPROC_DIR for the processes to come, which must import this module only
    after it is set."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        if keep_pid is None or not stale.stem.endswith(f"_{keep_pid}"):
            stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)


def process_exiting() -> None:
    """A worker shutting down: its live gauges stop counting."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())


_LIVE_FILE = re.compile(r"^gauge_live\w*_(\d+)\.db$")


def _reap_dead_processes(path: str) -> None:
    """Mark dead the live-gauge files of workers that exited without shutting down."""
    pids = set()
    for name in os.listdir(path):
        match = _LIVE_FILE.match(name)
        if match:
            pids.add(int(match.group(1)))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:
            pass  # alive, someone else's


# Called before each exposition of this process: publishers that batch their updates
# (the database pool's gauges) write what they hold, so a scrape never reads a stale value.
before_exposition: list[Callable[[], None]] = []


def exposition() -> bytes:
    """The text format of every metric: this process's, or all workers' in multiprocess mode."""
    for publish in before_exposition:
        publish()
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY)
    _reap_dead_processes(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry)


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """The exposition on its own HTTP port, from a thread (a process with no `/metrics` of its
    own: a standalone job worker, SWITCHBOARD_WORKER_METRICS_PORT)."""
    from prometheus_client import start_http_server

    path = multiprocess_dir()
    registry = REGISTRY
    if path is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
    start_http_server(port, addr=addr, registry=registry)


async def metrics_endpoint(request: Request) -> Response:
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
