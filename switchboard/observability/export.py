"""Span export out of the gateway's process: encoding spans as OTLP protobuf costs more
than making them (about 30 µs a span against 5), and in a gateway process it would take
that time, and the interpreter's lock, from requests.

`ForwardingSpanExporter` is what the batch span processor exports to when OTLP export is
on (`tracing.configure_from_env`): it flattens each batch of finished spans into plain
tuples, pickles them and writes them to the stdin of a child process of its own
(`python -m switchboard.observability.export`), started on the first export. The child
rebuilds the spans and sends them with the SDK's OTLP/HTTP exporter, configured, as usual,
by the OTEL_EXPORTER_OTLP_* variables it inherits. It exits when its stdin closes (the
gateway process ended or shut tracing down). If the child cannot keep up, writes block
the span processor's thread (never a request), whose queue then drops spans, as it would
for a slow collector; if it dies, the next batch starts another.

Not forwarded: span links (the gateway makes none) and the instrumentation scope's
attributes and schema URL.
"""

from __future__ import annotations

import logging
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any, BinaryIO

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">I")


def _flat(span: ReadableSpan) -> tuple[Any, ...]:
    context, parent, status = span.context, span.parent, span.status
    scope = span.instrumentation_scope
    return (
        span.name,
        context.trace_id,
        context.span_id,
        int(context.trace_flags),
        list(context.trace_state.items()) if context.trace_state else None,
        (parent.span_id, parent.is_remote) if parent is not None else None,
        span.kind.value,
        span.start_time,
        span.end_time,
        dict(span.attributes or {}),
        [(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events],
        status.status_code.value,
        status.description,
        (scope.name, scope.version) if scope is not None else None,
    )


def _rebuilt(flat: tuple[Any, ...], resource: Resource) -> ReadableSpan:
    (name, trace_id, span_id, flags, state, parent, kind, start, end) = flat[:9]
    (attributes, events, status_code, description, scope) = flat[9:]
    trace_flags = TraceFlags(flags)
    trace_state = TraceState(state) if state else None
    return ReadableSpan(
        name,
        context=SpanContext(
            trace_id, span_id, is_remote=False, trace_flags=trace_flags, trace_state=trace_state
        ),
        parent=SpanContext(trace_id, parent[0], is_remote=parent[1], trace_flags=trace_flags)
        if parent
        else None,
        resource=resource,
        attributes=attributes,
        events=[Event(n, a, timestamp=t) for n, t, a in events],
        kind=SpanKind(kind),
        status=Status(StatusCode(status_code), description),
        start_time=start,
        end_time=end,
        instrumentation_scope=InstrumentationScope(*scope) if scope else None,
    )


def _write(stream: BinaryIO, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(payload)) + payload)
    stream.flush()


def _read(stream: BinaryIO) -> Any:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(header)
    return pickle.loads(stream.read(size))


class ForwardingSpanExporter(SpanExporter):
    """Hands finished spans to the export process; see the module's docstring."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        batch = [_flat(span) for span in spans]
        with self._lock:
            for attempt in range(2):
                try:
                    child = self._running_child()
                    assert child.stdin is not None
                    _write(child.stdin, batch)
                    return SpanExportResult.SUCCESS
                except (BrokenPipeError, OSError, ValueError) as error:
                    self._child = None
                    if attempt:
                        log.warning("span export process unavailable: %s", type(error).__name__)
        return SpanExportResult.FAILURE

    def _running_child(self) -> subprocess.Popen[bytes]:
        if self._child is None or self._child.poll() is not None:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "switchboard.observability.export"],
                stdin=subprocess.PIPE,
            )
            assert self._child.stdin is not None
            _write(self._child.stdin, dict(self.resource.attributes))
        return self._child

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        with self._lock:
            child, self._child = self._child, None
        if child is not None and child.stdin is not None:
            try:
                child.stdin.close()
                child.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                child.kill()


def main() -> int:
    """The export process: frames from stdin, OTLP/HTTP out, until stdin closes."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    stream = sys.stdin.buffer
    resource_attributes = _read(stream)
    if resource_attributes is None:
        return 0
    resource = Resource(resource_attributes)
    exporter = OTLPSpanExporter()
    try:
        while (batch := _read(stream)) is not None:
            exporter.export([_rebuilt(flat, resource) for flat in batch])
    finally:
        exporter.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
