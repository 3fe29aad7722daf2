"""OTLP export as the OTEL_* variables configure it: nothing by default, and with an endpoint,
a request's spans reach an OTLP/HTTP receiver (here, one in this test) through the export
process."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from switchboard.observability import tracing
from switchboard.observability.export import ForwardingSpanExporter

PROBE = "query ObsExportProbe { viewer { displayName } }"
RESOURCE = Resource({"service.name": "switchboard-test"})


class Receiver:
    """An OTLP/HTTP trace receiver on a free port, keeping what it is sent."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                received.append(message)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) of everything received."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    found.extend((resource, span) for span in scope_spans.spans)
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def test_nothing_is_exported_unless_the_environment_says_so() -> None:
    exporter = tracing._exporter_from_env
    assert exporter({}, RESOURCE) is None
    assert exporter({"OTEL_TRACES_EXPORTER": "none"}, RESOURCE) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert isinstance(exporter(endpoint, RESOURCE), ForwardingSpanExporter)
    assert isinstance(exporter({"OTEL_TRACES_EXPORTER": "otlp"}, RESOURCE), ForwardingSpanExporter)
    assert isinstance(exporter(endpoint, RESOURCE, inline=True), OTLPSpanExporter)
    with pytest.raises(ValueError, match="http/protobuf"):
        exporter({**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, RESOURCE)
    with pytest.raises(ValueError, match="otlp, console or none"):
        exporter({"OTEL_TRACES_EXPORTER": "zipkin"}, RESOURCE)


async def test_a_requests_spans_reach_an_otlp_receiver_through_the_export_process(
    client: httpx.AsyncClient,
    token: Any,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The export process reads the endpoint as any OTLP exporter does.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint)
    exporter = tracing._exporter_from_env(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint}, RESOURCE
    )
    assert isinstance(exporter, ForwardingSpanExporter)
    provider = tracing.build_provider([SimpleSpanProcessor(exporter)], resource=RESOURCE)
    previous = tracing.STATE.provider
    tracing.install(provider)
    try:
        response = await client.post(
            "/graphql",
            json={"query": PROBE},
            headers={"authorization": f"Bearer {token('acme')}"},
        )
    finally:
        tracing.install(previous)
        provider.shutdown()  # closes the export process's input: it sends all, then exits
    assert response.status_code == 200
    trace_id = response.headers["x-trace-id"]

    received = receiver.spans()
    assert received and all(r["service.name"] == "switchboard-test" for r, _ in received)
    spans = {span.name: span for _, span in received}
    assert {"POST /graphql", "query ObsExportProbe"} <= set(spans)
    assert all(span.trace_id.hex() == trace_id for _, span in received)
    server, operation = spans["POST /graphql"], spans["query ObsExportProbe"]
    assert server.parent_span_id == b""
    assert operation.parent_span_id == server.span_id
    statements = [span for _, span in received if span.name == "SELECT"]
    assert len(statements) == int(response.headers["x-sql-statements"])
    for statement in statements:
        assert statement.parent_span_id == operation.span_id
        attributes = {a.key: a.value.string_value for a in statement.attributes}
        assert attributes["db.system.name"] == "postgresql"
        assert statement.end_time_unix_nano >= statement.start_time_unix_nano > 0
