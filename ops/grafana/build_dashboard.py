"""Builds ops/grafana/switchboard.json, the Grafana dashboard of a Switchboard deployment.

Run `python ops/grafana/build_dashboard.py` after changing a panel; the JSON is what
operators import (Dashboards → New → Import).
tests/integration/test_observability_ops.py checks that
the JSON is this script's output, that every query parses (promtool) and that every metric
it names exists. Rows: API latency, queue health, LLM costs, the database, live connections.

Variables: `datasource` (a Prometheus data source), `job` (the scrape job(s) of the
gateway) and `audience` (dashboard, mobile, agent).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("switchboard.json")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


JOB = 'job=~"$job"'
SERVER_ERROR = 'code="INTERNAL_SERVER_ERROR"'
HIT = 'result="hit"'


def m(name: str, *matchers: str) -> str:
    """A selector of `name` within the chosen jobs, plus `matchers`."""
    return name + "{" + ",".join([JOB, *matchers]) + "}"


def quantile(q: float, histogram: str, by: str = "", *matchers: str) -> str:
    group = ", ".join(["le", *([by] if by else [])])
    buckets = m(histogram + "_bucket", *matchers)
    return f"histogram_quantile({q}, sum by ({group}) (rate({buckets}[{RATE}])))"


def thresholds(*steps: tuple[float, str]) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": "green", "value": None}]
        + [{"color": color, "value": value} for value, color in steps],
    }


WARN_CRIT = ("orange", "red")


class Layout:
    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.y = 0
        self.x = 0
        self.row_height = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def panel(
        self,
        title: str,
        targets: list[tuple[str, str]],
        unit: str = "short",
        width: int = 8,
        steps: tuple[tuple[float, str], ...] = (),
        kind: str = "timeseries",
        description: str = "",
    ) -> None:
        if self.x + width > 24:
            self._newline()
        defaults: dict[str, Any] = {"unit": unit, "thresholds": thresholds(*steps)}
        if kind == "timeseries" and steps:
            defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
        self.panels.append(
            {
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": width, "x": self.x, "y": self.y},
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}}
                if kind == "timeseries"
                else {},
                "targets": [
                    {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}
                    for (expr, legend), ref in zip(targets, "ABCDEFGH", strict=False)
                ],
            }
        )
        self.x += width
        self.row_height = 8

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x = 0


def build() -> dict[str, Any]:
    lay = Layout()
    duration = "switchboard_graphql_request_duration_seconds"
    audience = 'audience=~"$audience"'

    lay.row("API latency")
    lay.panel(
        "API latency p50 / p95 / p99",
        [(quantile(q, duration, "", audience), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)],
        unit="s",
        steps=((0.3, WARN_CRIT[0]), (1.0, WARN_CRIT[1])),
        description="GraphQL requests over HTTP; alerts at p99 300 ms (warning) and 1 s.",
    )
    lay.panel(
        "API p99 by operation",
        [(quantile(0.99, duration, "operation", audience), "{{operation}}")],
        unit="s",
        steps=((0.3, WARN_CRIT[0]), (1.0, WARN_CRIT[1])),
    )
    lay.panel(
        "Requests per second by operation and audience",
        [
            (
                f"sum by (operation, audience) (rate({m(duration + '_count', audience)}[{RATE}]))",
                "{{operation}} ({{audience}})",
            )
        ],
        unit="reqps",
    )
    lay.panel(
        "Server error rate",
        [
            (
                f"sum(rate({m('switchboard_graphql_errors_total', SERVER_ERROR)}[{RATE}]))"
                f" / sum(rate({m(duration + '_count')}[{RATE}]))",
                "INTERNAL_SERVER_ERROR",
            )
        ],
        unit="percentunit",
        steps=((0.01, WARN_CRIT[0]), (0.05, WARN_CRIT[1])),
        description="Requests whose answer carried INTERNAL_SERVER_ERROR; alerts at 1% and 5%.",
    )
    lay.panel(
        "Errors by code",
        [
            (
                f"sum by (code) (rate({m('switchboard_graphql_errors_total')}[{RATE}]))",
                "{{code}}",
            )
        ],
        unit="reqps",
    )
    lay.panel(
        "Cache hit rate",
        [
            (
                f"sum by (cache) (rate({m('switchboard_cache_requests_total', HIT)}[{RATE}]))"
                f" / sum by (cache) (rate({m('switchboard_cache_requests_total')}[{RATE}]))",
                "{{cache}}",
            )
        ],
        unit="percentunit",
    )

    lay.row("Queue health")
    wait, run = "switchboard_job_wait_seconds", "switchboard_job_run_seconds"
    lay.panel(
        "Job wait p99 by role",
        [(quantile(0.99, wait, "role"), "{{role}}")],
        unit="s",
        steps=((30, WARN_CRIT[0]), (300, WARN_CRIT[1])),
        description="Enqueue to start; alerts at 30 s and 5 min.",
    )
    lay.panel(
        "Job wait p95 by priority",
        [(quantile(0.95, wait, "priority"), "priority {{priority}}")],
        unit="s",
    )
    lay.panel("Job run time p95 by role", [(quantile(0.95, run, "role"), "{{role}}")], unit="s")
    lay.panel(
        "Jobs running by role",
        [(f"sum by (role) ({m('switchboard_jobs_in_progress')})", "{{role}}")],
    )
    lay.panel(
        "Job outcomes",
        [
            (
                f"sum by (outcome) (rate({m('switchboard_jobs_finished_total')}[{RATE}]))",
                "{{outcome}}",
            )
        ],
        unit="ops",
    )
    lay.panel(
        "Dead letters in 10 minutes",
        [
            (
                f"sum by (task) (increase({m('switchboard_job_dead_letters_total')}[10m]))",
                "{{task}}",
            )
        ],
        steps=((5, WARN_CRIT[0]), (20, WARN_CRIT[1])),
        description="Jobs that exhausted their retries; alerts over 5 and 20.",
    )

    lay.row("LLM costs")
    cost = "switchboard_llm_cost_usd_total"
    lay.panel(
        "LLM spend per hour by tenant",
        [(f"sum by (tenant) (increase({m(cost)}[1h]))", "{{tenant}}")],
        unit="currencyUSD",
    )
    lay.panel(
        "Last 24 h against the daily average, by tenant",
        [
            (
                f"sum by (tenant) (increase({m(cost)}[1d]))"
                f" / sum by (tenant) (increase({m(cost)}[7d] offset 1d) / 7)",
                "{{tenant}}",
            )
        ],
        unit="x",
        steps=((2, WARN_CRIT[0]), (5, WARN_CRIT[1])),
        description="1 is an average day; alerts over 2x and 5x.",
    )
    lay.panel(
        "LLM spend in 24 h by model and agent role",
        [
            (f"sum by (model) (increase({m(cost)}[1d]))", "{{model}}"),
            (f"sum by (agent) (increase({m(cost)}[1d]))", "{{agent}}"),
        ],
        unit="currencyUSD",
        kind="bargauge",
    )
    lay.panel(
        "Time to first token p50 / p95 by model",
        [
            (
                quantile(0.5, "switchboard_llm_time_to_first_token_seconds", "model"),
                "p50 {{model}}",
            ),
            (
                quantile(0.95, "switchboard_llm_time_to_first_token_seconds", "model"),
                "p95 {{model}}",
            ),
        ],
        unit="s",
        description="From an activity's dispatch to the first token of the model's answer.",
    )
    lay.panel(
        "LLM tokens per second",
        [
            (
                f"sum by (kind) (rate({m('switchboard_llm_tokens_total')}[{RATE}]))",
                "{{kind}}",
            )
        ],
    )
    lay.panel(
        "LLM calls per second by agent role",
        [
            (
                f"sum by (agent) (rate({m('switchboard_llm_calls_total')}[{RATE}]))",
                "{{agent}}",
            )
        ],
        unit="ops",
    )

    lay.row("Database")
    statement = "switchboard_db_statement_duration_seconds"
    lay.panel(
        "PostgreSQL statement p50 / p99",
        [(quantile(q, statement), f"p{int(q * 100)}") for q in (0.5, 0.99)],
        unit="s",
        steps=((0.02, WARN_CRIT[0]), (0.1, WARN_CRIT[1])),
        description="As the gateway sees a statement; alerts at p99 20 ms and 100 ms.",
    )
    lay.panel(
        "Statements per second by kind",
        [
            (
                f"sum by (operation) (rate({m(statement + '_count')}[{RATE}]))",
                "{{operation}}",
            )
        ],
        unit="ops",
    )
    lay.panel(
        "Connection pool",
        [
            (f"sum({m('switchboard_db_pool_connections_in_use')})", "in use"),
            (f"sum({m('switchboard_db_pool_connections_open')})", "open"),
            (f"sum({m('switchboard_db_pool_requests_waiting')})", "requests waiting"),
        ],
    )
    lay.panel(
        "Read-side statements by server",
        [
            (
                f"sum by (target, reason) (rate({m('switchboard_db_reads_total')}[{RATE}]))",
                "{{target}} ({{reason}})",
            )
        ],
        unit="ops",
        width=12,
        description="With read replicas only: where the loaders' statements ran, and why "
        "one went to the primary (README, Read replicas).",
    )
    lay.panel(
        "Read replica lag",
        [
            (f"max by (replica) ({m('switchboard_db_replica_lag_seconds')})", "{{replica}}"),
            (f"min by (replica) ({m('switchboard_db_replica_usable')})", "{{replica}} usable"),
        ],
        unit="s",
        width=12,
        description="Lag as the router measures it; usable 0 while the replica is skipped "
        "(past SWITCHBOARD_REPLICA_MAX_LAG_MS, unreachable).",
    )

    lay.row("Live connections")
    lay.panel(
        "HTTP requests in progress",
        [(f"sum({m('switchboard_http_requests_in_progress')})", "in progress")],
        width=6,
    )
    lay.panel(
        "Websocket connections open",
        [(f"sum({m('switchboard_websocket_connections_open')})", "open")],
        width=6,
    )
    lay.panel(
        "Subscriptions open by operation",
        [(f"sum by (operation) ({m('switchboard_subscriptions_open')})", "{{operation}}")],
        width=6,
    )
    lay.panel(
        "Live event lag (change to hand-over)",
        [
            (quantile(0.5, "switchboard_live_event_lag_seconds"), "p50"),
            (quantile(0.99, "switchboard_live_event_lag_seconds"), "p99"),
        ],
        width=6,
        unit="s",
        steps=((0.2, WARN_CRIT[0]), (1.0, WARN_CRIT[1])),
    )
    lay.panel(
        "Subscription events delivered per second",
        [
            (
                f"sum by (operation) (rate({m('switchboard_subscription_events_total')}[{RATE}]))",
                "{{operation}}",
            )
        ],
        width=6,
        unit="ops",
    )
    # Live events over plain HTTP (SSE, multipart): switchboard/live/stream.py.
    lay.panel(
        "Event streams open by transport",
        [(f"sum by (transport) ({m('switchboard_live_streams_open')})", "{{transport}}")],
        width=6,
    )
    lay.panel(
        "Stream events written per second",
        [
            (
                f"sum by (transport) (rate({m('switchboard_live_stream_events_total')}[{RATE}]))",
                "{{transport}}",
            )
        ],
        width=6,
        unit="ops",
    )
    lay.panel(
        "Stream closes by reason, resumes",
        [
            (
                "sum by (transport, reason) "
                f"(rate({m('switchboard_live_stream_closes_total')}[{RATE}]))",
                "{{transport}} {{reason}}",
            ),
            (
                f"sum by (transport) (rate({m('switchboard_live_resumes_total')}[{RATE}]))",
                "resumes {{transport}}",
            ),
        ],
        width=6,
        unit="ops",
    )
    lay.panel(
        "HTTP requests by status",
        [
            (
                f"sum by (status) (rate({m('switchboard_http_requests_total')}[{RATE}]))",
                "{{status}}",
            )
        ],
        width=24,
        unit="reqps",
    )

    for number, panel in enumerate(lay.panels, start=1):
        panel["id"] = number
    return {
        "title": "Switchboard",
        "uid": "switchboard-gateway",
        "description": "The Switchboard GraphQL gateway: API, jobs, LLM costs, database, live.",
        "tags": ["switchboard"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "job",
                    "label": "Job",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": "label_values(switchboard_http_requests_total, job)",
                        "refId": "job",
                    },
                    "definition": "label_values(switchboard_http_requests_total, job)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {},
                    "refresh": 2,
                    "hide": 0,
                },
                {
                    "name": "audience",
                    "label": "Audience",
                    "type": "custom",
                    "query": "dashboard,mobile,agent,none",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {},
                    "hide": 0,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": lay.panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
