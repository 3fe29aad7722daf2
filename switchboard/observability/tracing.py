"""Tracing: this process's OpenTelemetry tracer provider, and the small helpers spans need.

Configuration is the standard OTEL_* environment, read once per process by
`configure_from_env` when the app is created:

- Nothing is exported by default. Spans are exported when OTEL_TRACES_EXPORTER is `otlp`
  (or `console`), or when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); OTEL_TRACES_EXPORTER=none keeps it off.
- OTLP goes over HTTP/protobuf (OTEL_EXPORTER_OTLP_PROTOCOL `http/protobuf`, the default
  here; `grpc` is refused at start: that exporter is not installed, use port 4318). The
  exporter reads its own variables (endpoint, headers, timeout, compression, certificate)
  and batching reads OTEL_BSP_*. Encoding and sending happen in a child process
  (`export`), unless SWITCHBOARD_OTLP_INLINE=1 (`otlp_inline`, a Settings knob passed
  in) keeps them in this one.
- While exporting, sampling follows OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (default
  `parentbased_always_on`); OTEL_SERVICE_NAME (default `switchboard`) and
  OTEL_RESOURCE_ATTRIBUTES describe the service; an incoming `traceparent` is honoured
  (OTEL_PROPAGATORS, default W3C trace context and baggage).
- OTEL_SDK_DISABLED=true turns tracing off altogether: no spans and no trace ids.

Child spans of SQL statements and Redis commands are cheap on the request's path: a hook
records a tuple (`child_span`), and the request's middleware turns them into spans after
the response has been sent (`defer_children` / `flush_children`); outside a request (a
job, a script) they become spans at once. Only the HTTP span and the GraphQL operation's
span are made while the request runs.

When nothing is exported, root spans (an HTTP request, a websocket connection, a job) are
still started, with a sampler that records nothing: they cost about a microsecond, give
every log line a trace id and carry an incoming trace on to the jobs a request enqueues.
Child spans (the GraphQL operation, SQL statements, Redis commands, resolvers) are made
only under a recording parent (`recording_parent`), so they cost nothing then.

The provider is this module's own (`STATE`), not OpenTelemetry's global one, so that tests
and perf/bench_tracing.py can switch it (`install`). Code that makes spans calls
`tracer()`, never `opentelemetry.trace.get_tracer`.
"""

from __future__ import annotations

import contextvars
import logging
import os
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, Tracer

log = logging.getLogger(__name__)
_UNSET = Status(StatusCode.UNSET)

TRACER_NAME = "switchboard"


class _State:
    """What every span-making hook reads: one attribute look-up on the hot path."""

    __slots__ = ("configured", "provider", "trace_resolvers", "tracer")

    def __init__(self) -> None:
        self.provider: TracerProvider | None = None
        self.tracer: Tracer = trace.NoOpTracer()
        self.trace_resolvers = False
        self.configured = False


STATE = _State()


def tracer() -> Tracer:
    return STATE.tracer


def build_provider(
    processors: Iterable[SpanProcessor] = (),
    sampler: Sampler | None = None,
    resource: Resource | None = None,
) -> TracerProvider:
    """A provider with these span processors; `sampler` None means OTEL_TRACES_SAMPLER's."""
    provider = TracerProvider(
        sampler=sampler, resource=resource or _resource(), shutdown_on_exit=True
    )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def install(provider: TracerProvider | None, trace_resolvers: bool | None = None) -> None:
    """Make `provider` the one this process's spans come from (None: tracing off)."""
    STATE.provider = provider
    STATE.tracer = provider.get_tracer(TRACER_NAME) if provider else trace.NoOpTracer()
    if trace_resolvers is not None:
        STATE.trace_resolvers = trace_resolvers


def configure_from_env(trace_resolvers: bool = False, otlp_inline: bool = False) -> None:
    """Set up tracing from the OTEL_* environment (the SDK's own variables, read where the
    SDK expects them) and our settings; only the first call in a process builds."""
    STATE.trace_resolvers = trace_resolvers
    if STATE.configured:
        return
    STATE.configured = True
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        install(None)
        return
    resource = _resource()
    exporter = _exporter_from_env(env, resource, inline=otlp_inline)
    if exporter is None:
        # Trace ids for logs and propagation, nothing recorded.
        install(build_provider(sampler=ALWAYS_OFF, resource=resource))
    else:
        install(build_provider([BatchSpanProcessor(exporter)], resource=resource))
        log.info("exporting traces with %s", type(exporter).__name__)


def _exporter_from_env(
    env: Mapping[str, str], resource: Resource, inline: bool = False
) -> SpanExporter | None:
    endpoint_set = bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    choice = env.get("OTEL_TRACES_EXPORTER", "otlp" if endpoint_set else "none").strip().lower()
    if choice in ("", "none"):
        return None
    if choice == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if choice != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={choice!r}: use otlp, console or none")
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol.strip().lower() != "http/protobuf":
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is installed"
        )
    if inline:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from switchboard.observability.export import ForwardingSpanExporter

    return ForwardingSpanExporter(resource)


def _resource() -> Resource:
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    resource = Resource.create()
    if not os.environ.get("OTEL_SERVICE_NAME") and resource.attributes.get(
        SERVICE_NAME, ""
    ).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "switchboard"}))
    return resource


def flush(timeout_ms: int = 5000) -> None:
    if STATE.provider is not None:
        STATE.provider.force_flush(timeout_ms)


def recording_parent() -> Span | None:
    """The current span if it records (so a child span is worth making), else None."""
    span = trace.get_current_span()
    return span if span.is_recording() else None


def extract_from_asgi(headers: Iterable[tuple[bytes, bytes]]) -> Context | None:
    """The caller's trace context from ASGI headers; None (fast) when there is none."""
    carrier = None
    for name, value in headers:
        if name == b"traceparent" or name == b"tracestate" or name == b"baggage":
            if carrier is None:
                carrier = {}
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    return propagate.extract(carrier) if carrier else None


def inject() -> dict[str, str]:
    """The current trace context as W3C headers (traceparent, tracestate), for a message."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def trace_id_of(span: Span) -> str | None:
    context = span.get_span_context()
    return _hex32(context.trace_id) if context.is_valid else None


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, if there is a valid one."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return _hex32(context.trace_id), format(context.span_id, "016x")


def _hex32(trace_id: int) -> str:
    return format(trace_id, "032x")


# (name, kind, parent, start ns, end ns, attributes, error) of child spans not made yet.
_Child = tuple[str, SpanKind, Span, int, int, Mapping[str, Any], BaseException | None]
_deferred: contextvars.ContextVar[list[_Child] | None] = contextvars.ContextVar(
    "deferred_child_spans", default=None
)


def child_span(
    name: str,
    kind: SpanKind,
    parent: Span,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any],
    error: BaseException | None = None,
) -> None:
    """A finished child of `parent`: kept for `flush_children` inside a request, else made now."""
    children = _deferred.get()
    if children is None:
        _make(name, kind, parent, start_ns, end_ns, attributes, error)
    else:
        children.append((name, kind, parent, start_ns, end_ns, attributes, error))


def defer_children() -> contextvars.Token[list[_Child] | None]:
    """From now on in this context, child spans wait for `flush_children`."""
    return _deferred.set([])


def flush_children(token: contextvars.Token[list[_Child] | None]) -> None:
    """Make the child spans recorded since `defer_children`."""
    children = _deferred.get()
    _deferred.reset(token)
    for child in children or ():
        _make(*child)


def _make(
    name: str,
    kind: SpanKind,
    parent: Span,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any],
    error: BaseException | None,
) -> None:
    """The finished span, straight to the span processors.

    A child of a recording parent is sampled as its parent was, and it is finished when it
    is made, so it skips the SDK's mutable span (its locks, attribute checks and sampler):
    that is most of a span's cost. Span processors see it in `on_end` only."""
    tracer = STATE.tracer
    if not isinstance(tracer, SdkTracer):
        return
    parent_context = parent.get_span_context()
    events: tuple[Event, ...] = ()
    status = _UNSET
    if error is not None:
        events = (
            Event(
                "exception",
                {
                    "exception.type": type(error).__qualname__,
                    "exception.message": str(error),
                    "exception.stacktrace": "".join(traceback.format_exception(error)),
                },
                timestamp=end_ns,
            ),
        )
        status = Status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
    span = ReadableSpan(
        name,
        context=SpanContext(
            parent_context.trace_id,
            tracer.id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=parent_context.trace_flags,
            trace_state=parent_context.trace_state,
        ),
        parent=parent_context,
        resource=tracer.resource,
        attributes=attributes,
        events=events,
        kind=kind,
        instrumentation_info=tracer.instrumentation_info,
        status=status,
        start_time=start_ns,
        end_time=end_ns,
        instrumentation_scope=tracer._instrumentation_scope,
    )
    tracer.span_processor.on_end(span)
