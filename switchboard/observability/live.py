"""Live connections: websocket subscriptions open, and events fanned out to subscribers.
For the subscriptions feature to call; websocket connections themselves are counted and
traced by the middleware (`switchboard_websocket_connections_open`, span `WS /graphql`).

    with live.subscription("TenantEvents"):       # while one subscription is open
        async for event in source:
            live.delivered("TenantEvents")        # each event sent to this subscriber
            ...

or, for a fan-out that sends one event to n subscribers at once, `delivered(op, n)`.

Metrics: `switchboard_subscriptions_open{operation}` (a gauge summed over live worker
processes) and `switchboard_subscription_events_total{operation}`. `operation` is the
subscription operation's name, capped like every client-chosen name
(`metrics.operation_label`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from switchboard.observability import metrics


@contextlib.contextmanager
def subscription(operation: str | None) -> Iterator[None]:
    gauge = metrics.SUBSCRIPTIONS_OPEN.labels(metrics.operation_label(operation))
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def delivered(operation: str | None, count: int = 1) -> None:
    if count > 0:
        metrics.SUBSCRIPTION_EVENTS.labels(metrics.operation_label(operation)).inc(count)
