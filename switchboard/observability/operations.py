"""GraphQL operations: a span per operation, the request duration histogram, errors by code,
and resolver spans when asked for.

The edge calls in at three points, so the endpoint's own code stays its own:

- `observe(endpoint, request)` wraps the whole GraphQL-over-HTTP request (app.py);
- `identify(operation, query, principal)` once the operation is known (graphql_http.py):
  its name, its type, the token's audience, and the document whose sha256 is the span's
  `graphql.document.hash` (pass `document_hash` when the request already named it, as
  persisted queries do);
- `result(status, payload)` with the answer about to be sent: its error codes.

Span: `query DashboardOverview` (type, then name), a child of the HTTP request's span,
with `graphql.operation.name`, `graphql.operation.type`, `graphql.document.hash` and, when
the answer carried errors, `graphql.error.codes`; SQL statements and Redis commands of the
operation are its children. It is made only when the request's span records.

Metrics (see `metrics`): `switchboard_graphql_request_duration_seconds{operation, type,
audience}` for every answered request (GraphiQL's page is not one), and
`switchboard_graphql_errors_total{operation, code}` once per request and code.

Resolver spans (SWITCHBOARD_TRACE_RESOLVERS=true): `resolver_middleware()` gives
graphql-core a middleware that makes a span for every resolver whose result is awaited (the
DataLoader batches) and for every root field; plain attribute fields make none. It costs a
few microseconds per field even so, hence opt-in.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, StatusCode
from starlette.requests import Request
from starlette.responses import Response

from switchboard.observability import metrics
from switchboard.observability.tracing import STATE

SERVER_ERROR_CODES = frozenset({"INTERNAL_SERVER_ERROR"})


@dataclass(slots=True)
class _Operation:
    identified: bool = False
    answered: bool = False
    name: str | None = None
    type: str = "unknown"
    audience: str = "none"
    query: str | None = None
    document_hash: str | None = None
    status: int = 0
    codes: frozenset[str] = frozenset()


_current: contextvars.ContextVar[_Operation | None] = contextvars.ContextVar(
    "graphql_operation", default=None
)
_durations: dict[tuple[str, str, str], Any] = {}


async def observe(endpoint: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
    """Run the GraphQL endpoint for `request` inside the operation's span and metrics."""
    operation = _Operation()
    reset = _current.set(operation)
    span = token = None
    if trace.get_current_span().is_recording():
        span = STATE.tracer.start_span("graphql")
        token = context.attach(trace.set_span_in_context(span))
    started = time.perf_counter()
    try:
        return await endpoint(request)
    except BaseException as error:
        operation.answered = True
        operation.status = 500
        operation.codes = frozenset({"INTERNAL_SERVER_ERROR"})
        if span is not None:
            span.record_exception(error)
        raise
    finally:
        elapsed = time.perf_counter() - started
        _current.reset(reset)
        if token is not None:
            context.detach(token)
        _finish(operation, span, elapsed)


def identify(
    operation: Any, query: str | None, principal: Any, document_hash: str | None = None
) -> None:
    """The operation is known: `operation` is graphql-core's OperationDefinitionNode."""
    current = _current.get()
    if current is None:
        return
    current.identified = True
    current.type = operation.operation.value
    current.name = operation.name.value if operation.name else None
    current.audience = getattr(principal, "audience", None) or "none"
    current.query = query
    current.document_hash = document_hash


def result(status: int, payload: dict[str, Any]) -> None:
    """The answer about to be sent: its HTTP status and its errors' codes."""
    current = _current.get()
    if current is None:
        return
    current.answered = True
    current.status = status
    errors = payload.get("errors")
    if errors:
        current.codes = frozenset(
            (error.get("extensions") or {}).get("code") or "INTERNAL_SERVER_ERROR"
            for error in errors
        )


def _finish(operation: _Operation, span: Span | None, elapsed: float) -> None:
    if operation.answered:
        name = metrics.operation_label(operation.name) if operation.identified else "unknown"
        key = (name, operation.type, operation.audience)
        histogram = _durations.get(key)
        if histogram is None:
            histogram = _durations[key] = metrics.GRAPHQL_DURATION.labels(*key)
        histogram.observe(elapsed)
        for code in operation.codes:
            metrics.GRAPHQL_ERRORS.labels(name, code).inc()
    if span is None:
        return
    if operation.identified:
        span.update_name(f"{operation.type} {operation.name or 'anonymous'}")
        span.set_attribute("graphql.operation.type", operation.type)
        if operation.name:
            span.set_attribute("graphql.operation.name", operation.name)
        document_hash = operation.document_hash or (
            document_sha256(operation.query) if operation.query else None
        )
        if document_hash:
            span.set_attribute("graphql.document.hash", document_hash)
    if operation.codes:
        span.set_attribute("graphql.error.codes", sorted(operation.codes))
    if operation.status >= 500 or operation.codes & SERVER_ERROR_CODES:
        span.set_status(StatusCode.ERROR)
    span.end()


@functools.lru_cache(maxsize=512)
def document_sha256(query: str) -> str:
    """The hex sha256 of a document's text (what APQ calls its hash)."""
    return hashlib.sha256(query.encode()).hexdigest()


def resolver_middleware() -> list[Any] | None:
    """graphql-core middleware for resolver spans, when asked for and the trace records."""
    if not STATE.trace_resolvers or not trace.get_current_span().is_recording():
        return None
    return [_RESOLVER_SPANS]


class _ResolverSpans:
    def resolve(self, next_: Callable[..., Any], root: Any, info: Any, **args: Any) -> Any:
        started = time.time_ns()
        value = next_(root, info, **args)
        if isawaitable(value):
            return self._awaited(value, info, started)
        if info.path.prev is None:
            _resolver_span(info, started).end()
        return value

    async def _awaited(self, value: Awaitable[Any], info: Any, started: int) -> Any:
        span = _resolver_span(info, started)
        try:
            return await value
        except Exception as error:
            span.record_exception(error)
            span.set_status(StatusCode.ERROR)
            raise
        finally:
            span.end()


def _resolver_span(info: Any, started: int) -> Span:
    return STATE.tracer.start_span(
        f"resolve {info.parent_type.name}.{info.field_name}",
        start_time=started,
        attributes={
            "graphql.field.name": info.field_name,
            "graphql.field.path": ".".join(str(key) for key in info.path.as_list()),
        },
    )


_RESOLVER_SPANS = _ResolverSpans()
