"""Traces: what spans a request makes, checked with OpenTelemetry's in-memory exporter.

The session's app is used as it is; only the tracer provider is switched for a test
(`tracing.install`) and put back after it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace import SpanKind, StatusCode

from switchboard.observability import tracing
from switchboard.observability.middleware import ObservabilityMiddleware
from tests.support.contract import query_operations

PROBE = "query ObsTraceProbe { viewer { displayName } tenant { name agents { role } } }"
REMOTE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
REMOTE_SPAN = "00f067aa0ba902b7"


def _install(sampler: Any) -> Iterator[InMemorySpanExporter]:
    previous_provider, previous_resolvers = tracing.STATE.provider, tracing.STATE.trace_resolvers
    exporter = InMemorySpanExporter()
    provider = tracing.build_provider([SimpleSpanProcessor(exporter)], sampler=sampler)
    tracing.install(provider, trace_resolvers=False)
    try:
        yield exporter
    finally:
        tracing.install(previous_provider, previous_resolvers)
        provider.shutdown()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span recorded and kept in memory."""
    yield from _install(ALWAYS_ON)


@pytest.fixture
def unsampled() -> Iterator[InMemorySpanExporter]:
    """The default when nothing is exported: trace ids, no recording."""
    yield from _install(ALWAYS_OFF)


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


async def _post(client: httpx.AsyncClient, query: str, token: str | None, **extra: Any) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    headers.update(extra.pop("headers", {}))
    return await client.post(
        "/graphql", json={"query": query, "variables": extra.get("variables")}, headers=headers
    )


async def test_a_request_makes_http_operation_database_and_redis_spans(
    client: httpx.AsyncClient, token: Any, spans: InMemorySpanExporter
) -> None:
    month_start = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0)
    month_end = (month_start + dt.timedelta(days=32)).replace(day=1)
    query = query_operations("dashboard")["DashboardOverview"]
    response = await _post(
        client,
        query,
        token("acme", "viewer"),
        variables={"monthStart": month_start.isoformat(), "monthEnd": month_end.isoformat()},
    )
    assert response.status_code == 200 and "errors" not in response.json()
    finished = list(spans.get_finished_spans())

    server = _one(finished, "POST /graphql")
    assert server.kind is SpanKind.SERVER and server.parent is None
    assert server.attributes["http.response.status_code"] == 200
    trace_id = server.context.trace_id
    assert response.headers["x-trace-id"] == _hex(trace_id, 32)
    assert all(s.context.trace_id == trace_id for s in finished)

    operation = _one(finished, "query DashboardOverview")
    assert operation.parent.span_id == server.context.span_id
    assert operation.attributes["graphql.operation.name"] == "DashboardOverview"
    assert operation.attributes["graphql.operation.type"] == "query"
    assert (
        operation.attributes["graphql.document.hash"] == hashlib.sha256(query.encode()).hexdigest()
    )

    statements = [s for s in finished if s.attributes.get("db.system.name") == "postgresql"]
    assert len(statements) == int(response.headers["x-sql-statements"]) > 1
    for statement in statements:
        assert statement.kind is SpanKind.CLIENT and statement.name == "SELECT"
        assert statement.parent.span_id == operation.context.span_id
        assert statement.attributes["db.query.text"].lstrip().upper().startswith(("SELECT", "WITH"))
        assert statement.end_time >= statement.start_time

    commands = [s for s in finished if s.attributes.get("db.system.name") == "redis"]
    assert "MGET" in {c.name for c in commands}  # the token and membership caches
    assert all(c.parent.span_id == operation.context.span_id for c in commands)
    assert not [s for s in finished if s.name.startswith("resolve ")]  # only when asked for


async def test_the_callers_trace_is_continued(
    client: httpx.AsyncClient, token: Any, spans: InMemorySpanExporter
) -> None:
    traceparent = f"00-{REMOTE_TRACE}-{REMOTE_SPAN}-01"
    response = await _post(client, PROBE, token("acme"), headers={"traceparent": traceparent})
    assert response.status_code == 200
    assert response.headers["x-trace-id"] == REMOTE_TRACE
    server = _one(list(spans.get_finished_spans()), "POST /graphql")
    assert _hex(server.context.trace_id, 32) == REMOTE_TRACE
    assert server.parent is not None and server.parent.is_remote
    assert _hex(server.parent.span_id, 16) == REMOTE_SPAN


async def test_failed_operations_carry_their_error_codes(
    client: httpx.AsyncClient, token: Any, spans: InMemorySpanExporter
) -> None:
    invalid = await _post(client, "query ObsBroken { noSuchField }", token("acme"))
    assert invalid.status_code == 200 and invalid.json()["errors"]
    refused = await _post(client, PROBE, "not-a-token")
    assert refused.status_code == 401
    operations = [s for s in spans.get_finished_spans() if s.name == "graphql"]
    codes = sorted(tuple(s.attributes["graphql.error.codes"]) for s in operations)
    assert codes == [("GRAPHQL_VALIDATION_FAILED",), ("UNAUTHENTICATED",)]
    # Client errors are not the server's failures.
    assert all(s.status.status_code is not StatusCode.ERROR for s in operations)


async def test_resolver_spans_appear_only_when_asked_for(
    client: httpx.AsyncClient, token: Any, spans: InMemorySpanExporter
) -> None:
    plain = await _post(client, PROBE, token("acme"))
    tracing.STATE.trace_resolvers = True
    traced = await _post(client, PROBE, token("acme"))
    assert traced.json() == plain.json()
    finished = list(spans.get_finished_spans())
    operations = [s for s in finished if s.name == "query ObsTraceProbe"]
    assert len(operations) == 2
    resolvers = [s for s in finished if s.name.startswith("resolve ")]
    assert {s.name for s in resolvers} >= {"resolve Query.viewer", "resolve Query.tenant"}
    assert all(s.parent.span_id == operations[1].context.span_id for s in resolvers)
    assert all(s.context.trace_id == operations[1].context.trace_id for s in resolvers)


async def test_without_an_exporter_requests_get_trace_ids_but_record_nothing(
    client: httpx.AsyncClient, token: Any, unsampled: InMemorySpanExporter
) -> None:
    first = await _post(client, PROBE, token("acme"))
    second = await _post(client, PROBE, token("acme"))
    ids = {first.headers["x-trace-id"], second.headers["x-trace-id"]}
    assert len(ids) == 2 and all(len(i) == 32 and int(i, 16) for i in ids)
    continued = await _post(
        client, PROBE, token("acme"), headers={"traceparent": f"00-{REMOTE_TRACE}-{REMOTE_SPAN}-01"}
    )
    assert continued.headers["x-trace-id"] == REMOTE_TRACE
    assert unsampled.get_finished_spans() == ()


async def test_probes_and_scrapes_make_no_spans(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(path)).status_code == 200
    assert spans.get_finished_spans() == ()


async def test_a_websocket_connection_is_one_span_for_its_whole_life(
    spans: InMemorySpanExporter,
) -> None:
    from switchboard.observability import metrics

    opened_during: list[float | None] = []

    async def websocket_app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept", "subprotocol": "graphql-transport-ws"})
        opened_during.append(_gauge(metrics.WEBSOCKETS_OPEN))
        await send({"type": "websocket.close", "code": 4401})

    before = _gauge(metrics.WEBSOCKETS_OPEN)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/graphql",
        "headers": [(b"traceparent", f"00-{REMOTE_TRACE}-{REMOTE_SPAN}-01".encode())],
    }
    await ObservabilityMiddleware(websocket_app)(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert opened_during == [before + 1] and _gauge(metrics.WEBSOCKETS_OPEN) == before
    span = _one(list(spans.get_finished_spans()), "WS /graphql")
    assert span.kind is SpanKind.SERVER
    assert _hex(span.context.trace_id, 32) == REMOTE_TRACE
    assert span.attributes["websocket.close_code"] == 4401


def _gauge(gauge: Any) -> float:
    return gauge._value.get()


async def test_a_failed_statement_makes_a_span_with_its_error(
    servers: Any, spans: InMemorySpanExporter
) -> None:
    from sqlalchemy import exc

    from switchboard.infra.db import Database, create_engine
    from switchboard.settings import Settings

    db = Database(create_engine(Settings(), servers.database_url))
    try:
        with (
            tracing.tracer().start_as_current_span("outside a request"),
            pytest.raises(exc.DBAPIError),
        ):
            await db.fetch("SELECT 1 / 0")
    finally:
        await db.dispose()
    finished = list(spans.get_finished_spans())
    outer = _one(finished, "outside a request")
    failed = _one(finished, "SELECT")
    assert failed.parent.span_id == outer.context.span_id
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["db.query.text"] == "SELECT 1 / 0"
    assert [e.name for e in failed.events] == ["exception"]
    assert failed.events[0].attributes["exception.message"] == "division by zero"


async def test_a_job_continues_the_trace_of_the_request_that_enqueued_it(
    servers: Any, spans: InMemorySpanExporter
) -> None:
    """Enqueue inside a request's operation span, run elsewhere: one trace from end to end."""
    import time

    from switchboard.infra.db import Database, create_engine
    from switchboard.observability import jobs
    from switchboard.settings import Settings

    with tracing.tracer().start_as_current_span("mutation DispatchActivity") as enqueuing:
        labels = jobs.enqueue_labels()
    enqueued_ns = int(labels[jobs.ENQUEUED_AT])
    assert labels["traceparent"].split("-")[1] == _hex(enqueuing.get_span_context().trace_id, 32)

    # The worker: another context, with nothing current; only the labels travel.
    db = Database(create_engine(Settings(), servers.database_url))
    try:
        with jobs.running("run_activity", labels, role="COPYWRITER", priority=1) as run:
            assert run.wait_s >= 0
            await db.fetch("SELECT 1")
    finally:
        await db.dispose()
    assert time.time_ns() >= enqueued_ns
    finished = list(spans.get_finished_spans())
    job = _one(finished, "job run_activity")
    assert job.kind is SpanKind.CONSUMER
    assert job.context.trace_id == enqueuing.get_span_context().trace_id
    assert job.parent.span_id == enqueuing.get_span_context().span_id
    assert job.start_time == enqueued_ns  # the span runs from enqueue to finish
    assert [e.name for e in job.events] == ["job.started"]
    assert job.attributes["job.role"] == "COPYWRITER" and job.attributes["job.priority"] == "1"
    assert job.attributes["job.outcome"] == "ok"
    statement = _one(finished, "SELECT")
    assert statement.parent.span_id == job.context.span_id
