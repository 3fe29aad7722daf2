"""The ASGI middleware: a span per HTTP request and per websocket connection, and the
HTTP-level metrics (requests by route, method and status; requests in progress; open
websockets).

- The span continues the caller's trace when the request carries `traceparent`, and the
  response carries the trace id in `x-trace-id` (for support: it finds the request's logs
  and, when exported, its trace).
- The spans of the request's SQL statements and Redis commands are made after the answer
  has been sent (`tracing.defer_children`), so they cost the client no time.
- `/metrics`, `/healthz` and `/readyz` are counted but make no span: probes and scrapes
  would drown the traces.
- At DEBUG level each request is logged with method, path (never the query string),
  status and time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, StatusCode

from switchboard.observability import metrics
from switchboard.observability.tracing import (
    STATE,
    defer_children,
    extract_from_asgi,
    flush_children,
)

log = logging.getLogger(__name__)

ROUTES = frozenset({"/graphql", "/graphql/stream", "/healthz", "/readyz", "/metrics"})
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

Scope = dict[str, Any]


class ObservabilityMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._counters: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope["path"]
        route = path if path in ROUTES else "other"
        method = scope["method"] if scope["method"] in METHODS else "other"
        started = time.perf_counter()
        status = 500
        span = token = deferring = None
        trace_header: tuple[bytes, bytes] | None = None
        if route not in UNTRACED:
            parent = extract_from_asgi(scope["headers"])
            span = STATE.tracer.start_span(
                f"{method} {route}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": path, "http.route": route},
            )
            token = context.attach(trace.set_span_in_context(span, parent))
            if span.is_recording():
                deferring = defer_children()  # statement and command spans: after the answer
            span_context = span.get_span_context()
            if span_context.is_valid:
                trace_header = (b"x-trace-id", format(span_context.trace_id, "032x").encode())

        async def send_observed(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if trace_header is not None:
                    message = {**message, "headers": [*message.get("headers", ()), trace_header]}
            await send(message)

        metrics.HTTP_IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_observed)
        except BaseException as error:
            if span is not None:
                span.record_exception(error)
            raise
        finally:
            metrics.HTTP_IN_PROGRESS.dec()
            self._counter(route, method, status).inc()
            if log.isEnabledFor(logging.DEBUG):  # still inside the span: the line has its id
                log.debug(
                    "%s %s %d %.1fms", method, path, status, (time.perf_counter() - started) * 1000
                )
            if deferring is not None:
                flush_children(deferring)
            if span is not None:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
                span.end()
                context.detach(token)  # type: ignore[arg-type]

    async def _websocket(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope["path"]
        route = path if path in ROUTES else "other"
        parent = extract_from_asgi(scope["headers"])
        span = STATE.tracer.start_span(
            f"WS {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"url.path": path, "http.route": route, "network.protocol.name": "ws"},
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        close_code: int | None = None

        async def send_observed(message: dict[str, Any]) -> None:
            nonlocal close_code
            if message["type"] == "websocket.close":
                close_code = message.get("code", 1000)
            await send(message)

        metrics.WEBSOCKETS_OPEN.inc()
        try:
            await self.app(scope, receive, send_observed)
        except BaseException as error:
            span.record_exception(error)
            span.set_status(StatusCode.ERROR)
            raise
        finally:
            metrics.WEBSOCKETS_OPEN.dec()
            if close_code is not None:
                span.set_attribute("websocket.close_code", close_code)
            span.end()
            context.detach(token)

    def _counter(self, route: str, method: str, status: int) -> Any:
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = metrics.HTTP_REQUESTS.labels(route, method, str(status))
        return counter
