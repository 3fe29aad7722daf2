"""Live connections: subscriptions open, and events delivered to subscribers.
Websocket connections themselves are counted and traced by the middleware
(`switchboard_websocket_connections_open`, span `WS /graphql`); the hub calls these:

    live.opened("TenantEvents")        # a subscription starts
    live.delivered("TenantEvents", n)  # one event sent to n subscribers
    live.closed("TenantEvents")        # it ends
    live.handed_over(occurred_at)      # an event reached its local subscribers

Metrics: `switchboard_subscriptions_open{operation}` (a gauge summed over live worker
processes), `switchboard_subscription_events_total{operation}` and
`switchboard_live_event_lag_seconds` (change to hand-over; the platform asks < 200 ms).
`operation` is the subscription operation's name, capped like every client-chosen name
(`metrics.operation_label`).
"""

from __future__ import annotations

import datetime as dt

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
