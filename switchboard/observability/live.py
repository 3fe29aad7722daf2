"""Live connections: subscriptions open, and events delivered to subscribers.
Websocket connections themselves are counted and traced by the middleware
(`switchboard_websocket_connections_open`, span `WS /graphql`); the hub calls these:

    live.opened("TenantEvents")        # a subscription starts
    live.delivered("TenantEvents", n)  # one event sent to n subscribers
    live.closed("TenantEvents")        # it ends
    live.handed_over(occurred_at)      # an event reached its local subscribers

and the HTTP event streams (switchboard/live/stream.py) and every transport's resumes:

    live.stream_opened("sse") / live.stream_ended("sse")
    live.stream_sent("multipart")              # one event written to one stream
    live.stream_closed("sse", "TOO_SLOW")      # why a stream ended
    live.resumed("websocket")                  # a subscription started from a position
    live.forwarded("gone")                     # an SSE operation sent to its stream's process

Metrics: `switchboard_subscriptions_open{operation}` (a gauge summed over live worker
processes), `switchboard_subscription_events_total{operation}` and
`switchboard_live_event_lag_seconds` (change to hand-over; the platform asks < 200 ms).
`operation` is the subscription operation's name, capped like every client-chosen name
(`metrics.operation_label`). Streams: `switchboard_live_streams_open{transport}`,
`switchboard_live_stream_events_total{transport}`, `switchboard_live_resumes_total{transport}`
and `switchboard_live_stream_closes_total{transport, reason}`. SSE single connection
operations that reached another process than their stream's:
`switchboard_live_sse_forwards_total{outcome}` (answered; gone: no process holds the
stream; timeout: its process did not answer; unavailable: Redis could not be reached).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from switchboard.observability import metrics


def opened(operation: str | None) -> None:
    metrics.SUBSCRIPTIONS_OPEN.labels(metrics.operation_label(operation)).inc()


def closed(operation: str | None) -> None:
    metrics.SUBSCRIPTIONS_OPEN.labels(metrics.operation_label(operation)).dec()


def delivered(operation: str | None, count: int = 1) -> None:
    if count > 0:
        metrics.SUBSCRIPTION_EVENTS.labels(metrics.operation_label(operation)).inc(count)


def handed_over(occurred_at: str) -> None:
    """An event (its `at`, ISO 8601) was handed to this process's subscribers."""
    changed = dt.datetime.fromisoformat(occurred_at)
    lag = (dt.datetime.now(dt.UTC) - changed).total_seconds()
    metrics.LIVE_EVENT_LAG.observe(max(lag, 0.0))


def stream_opened(transport: str) -> None:
    metrics.LIVE_STREAMS_OPEN.labels(transport).inc()


def stream_ended(transport: str) -> None:
    metrics.LIVE_STREAMS_OPEN.labels(transport).dec()


_SENT: dict[str, Any] = {}  # one child per transport: this runs once per event and stream


def stream_sent(transport: str) -> None:
    child = _SENT.get(transport)
    if child is None:
        child = _SENT[transport] = metrics.LIVE_STREAM_EVENTS.labels(transport)
    child.inc()


def stream_closed(transport: str, reason: str) -> None:
    metrics.LIVE_STREAM_CLOSES.labels(transport, reason).inc()


def resumed(transport: str) -> None:
    metrics.LIVE_RESUMES.labels(transport).inc()


def forwarded(outcome: str) -> None:
    metrics.LIVE_SSE_FORWARDS.labels(outcome).inc()
