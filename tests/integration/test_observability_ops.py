"""The Grafana dashboard and the Prometheus alert rules in ops/.

Prometheus's own promtool (Debian's `prometheus` package; scripts/test installs it) checks
the rules, runs unit tests that make every alert fire at its thresholds and stay quiet
below them, and parses every query of the dashboard. Every metric either names must be one
that switchboard/observability/metrics.py defines.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from switchboard.observability import metrics
from switchboard.settings import PROJECT_DIR

OPS = PROJECT_DIR / "ops"
RULES = OPS / "prometheus" / "alerts.yml"
DASHBOARD = OPS / "grafana" / "switchboard.json"
METRIC_NAME = re.compile(r"\bswitchboard[_:][A-Za-z0-9_:]*")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": ".*", "$audience": ".*"}


def promtool(*args: str | Path, cwd: Path | None = None) -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: scripts/test installs it (Debian's prometheus package)"
    run = subprocess.run(
        [path, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def exposed_names() -> set[str]:
    """Every sample name the gateway's metrics expose."""
    names = set()
    for instrument in vars(metrics).values():
        if not isinstance(instrument, MetricWrapperBase):
            continue
        name, kind = instrument._name, instrument._type
        if kind == "counter":
            names.add(name + "_total")
        elif kind == "histogram":
            names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(name)
    return names


def rule_groups() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text())["groups"]


def recorded_names() -> set[str]:
    return {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}


def test_the_alert_rules_pass_promtool() -> None:
    assert "SUCCESS: 15 rules found" in promtool("check", "rules", RULES)


def test_the_alert_rules_cover_every_threshold_and_name_real_metrics() -> None:
    thresholds: dict[tuple[str, str], str] = {}
    for group in rule_groups():
        for rule in group["rules"]:
            assert METRIC_NAME.findall(rule["expr"]), rule
            assert set(METRIC_NAME.findall(rule["expr"])) <= exposed_names() | recorded_names()
            if "alert" in rule:
                assert rule["annotations"]["summary"] and rule["annotations"]["description"]
                found = re.search(r">\s*([0-9.]+)\s*\*?", rule["expr"])
                assert found, rule["expr"]
                thresholds[(rule["alert"], rule["labels"]["severity"])] = found.group(1)
    assert thresholds == {
        ("SwitchboardApiLatencyHigh", "warning"): "0.3",
        ("SwitchboardApiLatencyHigh", "critical"): "1",
        ("SwitchboardErrorRateHigh", "warning"): "0.01",
        ("SwitchboardErrorRateHigh", "critical"): "0.05",
        ("SwitchboardLiveEventLagHigh", "warning"): "0.2",
        ("SwitchboardLiveEventLagHigh", "critical"): "1",
        ("SwitchboardQueueWaitHigh", "warning"): "30",
        ("SwitchboardQueueWaitHigh", "critical"): "300",
        ("SwitchboardDeadLetters", "warning"): "5",
        ("SwitchboardDeadLetters", "critical"): "20",
        ("SwitchboardPostgresLatencyHigh", "warning"): "0.02",
        ("SwitchboardPostgresLatencyHigh", "critical"): "0.1",
        ("SwitchboardLlmCostHigh", "warning"): "2",
        ("SwitchboardLlmCostHigh", "critical"): "5",
    }


# Promtool unit tests: each scenario says which severities fire at its eval time.


def _histogram(name: str, bounds: list[str], landing: str, per_minute: int = 60) -> list[Any]:
    """Cumulative buckets of a histogram whose observations all land in bucket `landing`."""
    index = bounds.index(landing)
    return [
        {
            "series": f'{name}_bucket{{le="{le}"}}',
            "values": f"0+{per_minute if i >= index else 0}x30",
        }
        for i, le in enumerate(bounds)
    ]


API = "switchboard_graphql_request_duration_seconds"
API_BOUNDS = ["0.1", "0.3", "0.5", "1", "2.5", "+Inf"]
QUEUE = "switchboard_job_wait_seconds"
QUEUE_BOUNDS = ["10", "30", "60", "300", "600", "+Inf"]
DB = "switchboard_db_statement_duration_seconds"
DB_BOUNDS = ["0.01", "0.02", "0.05", "0.1", "0.25", "+Inf"]
COST = "switchboard_llm_cost_usd_total"
LIVE = "switchboard_live_event_lag_seconds"
LIVE_BOUNDS = ["0.1", "0.3", "0.5", "1", "2.5", "+Inf"]

# (alert, input series, severities expected to fire at 30 minutes)
SCENARIOS: list[tuple[str, list[Any], list[str]]] = [
    ("SwitchboardApiLatencyHigh", _histogram(API, API_BOUNDS, "0.1"), []),
    ("SwitchboardApiLatencyHigh", _histogram(API, API_BOUNDS, "0.5"), ["warning"]),
    ("SwitchboardApiLatencyHigh", _histogram(API, API_BOUNDS, "2.5"), ["warning", "critical"]),
    ("SwitchboardLiveEventLagHigh", _histogram(LIVE, LIVE_BOUNDS, "0.1"), []),
    ("SwitchboardLiveEventLagHigh", _histogram(LIVE, LIVE_BOUNDS, "0.5"), ["warning"]),
    ("SwitchboardLiveEventLagHigh", _histogram(LIVE, LIVE_BOUNDS, "2.5"), ["warning", "critical"]),
    ("SwitchboardQueueWaitHigh", _histogram(QUEUE, QUEUE_BOUNDS, "30"), []),
    ("SwitchboardQueueWaitHigh", _histogram(QUEUE, QUEUE_BOUNDS, "60"), ["warning"]),
    (
        "SwitchboardQueueWaitHigh",
        _histogram(QUEUE, QUEUE_BOUNDS, "600"),
        ["warning", "critical"],
    ),
    ("SwitchboardPostgresLatencyHigh", _histogram(DB, DB_BOUNDS, "0.02"), []),
    ("SwitchboardPostgresLatencyHigh", _histogram(DB, DB_BOUNDS, "0.05"), ["warning"]),
    (
        "SwitchboardPostgresLatencyHigh",
        _histogram(DB, DB_BOUNDS, "0.25"),
        ["warning", "critical"],
    ),
]
for errors_per_minute, expected in ((0.5, []), (2, ["warning"]), (10, ["warning", "critical"])):
    SCENARIOS.append(
        (
            "SwitchboardErrorRateHigh",
            [
                {"series": f"{API}_count", "values": "0+100x30"},
                {
                    "series": 'switchboard_graphql_errors_total{code="INTERNAL_SERVER_ERROR"}',
                    "values": f"0+{errors_per_minute}x30",
                },
                {
                    "series": 'switchboard_graphql_errors_total{code="FORBIDDEN"}',
                    "values": "0+50x30",
                },
            ],
            expected,
        )
    )
# Dead letters: none for 20 minutes, then `step` a minute for the last ten.
for step, expected in ((0, []), (1, ["warning"]), (3, ["warning", "critical"])):
    SCENARIOS.append(
        (
            "SwitchboardDeadLetters",
            [
                {
                    "series": 'switchboard_job_dead_letters_total{task="run_activity"}',
                    "values": f"0x20 {step}+{step}x9",
                }
            ],
            expected,
        )
    )


def _annotations(rule: dict[str, Any], labels: dict[str, str]) -> dict[str, str]:
    rendered = {}
    for key, text in rule["annotations"].items():
        for name, value in labels.items():
            text = text.replace(f"{{{{ $labels.{name} }}}}", value)
        rendered[key] = text
    return rendered


def _expected(alert: str, severities: list[str], labels: dict[str, str]) -> dict[str, Any]:
    rules = {
        r["labels"]["severity"]: r
        for g in rule_groups()
        for r in g["rules"]
        if r.get("alert") == alert
    }
    return {
        "alertname": alert,
        "exp_alerts": [
            {
                "exp_labels": {"severity": severity, **labels},
                "exp_annotations": _annotations(rules[severity], labels),
            }
            for severity in severities
        ],
    }


def test_every_alert_fires_at_its_thresholds_and_not_below(tmp_path: Path) -> None:
    tests = []
    for alert, series, severities in SCENARIOS:
        tests.append(
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [{"eval_time": "30m", **_expected(alert, severities, {})}],
            }
        )
    # LLM spend: a week at one dollar every 5 minutes, then a day at 1x, 3x or 6x that.
    week = "0+1x2016"
    tenants = {"ten_steady": 1, "ten_busy": 3, "ten_runaway": 6}
    llm_series = [
        {"series": f'{COST}{{tenant="{tenant}"}}', "values": f"{week} {2016 + k}+{k}x287"}
        for tenant, k in tenants.items()
    ]
    llm_expected = _expected("SwitchboardLlmCostHigh", ["warning"], {"tenant": "ten_busy"})
    llm_expected["exp_alerts"] += _expected(
        "SwitchboardLlmCostHigh", ["warning", "critical"], {"tenant": "ten_runaway"}
    )["exp_alerts"]
    rules = tmp_path / "alerts.yml"
    shutil.copy(RULES, rules)
    (tmp_path / "short.yml").write_text(
        yaml.safe_dump({"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": tests})
    )
    (tmp_path / "llm.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["alerts.yml"],
                "evaluation_interval": "1h",
                "tests": [
                    {
                        "interval": "5m",
                        "input_series": llm_series,
                        "alert_rule_test": [
                            {"eval_time": "7d", "alertname": "SwitchboardLlmCostHigh"},
                            {"eval_time": "8d", **llm_expected},
                        ],
                    }
                ],
            }
        )
    )
    output = promtool("test", "rules", "short.yml", "llm.yml", cwd=tmp_path)
    assert output.count("SUCCESS") == 2


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_the_dashboard_is_the_generators_output() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_dashboard", OPS / "grafana/build_dashboard.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD.read_text() == module.render(), "run python ops/grafana/build_dashboard.py"


def test_the_dashboard_has_its_rows_and_well_formed_panels() -> None:
    dashboard = _dashboard()
    panels = dashboard["panels"]
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["API latency", "Queue health", "LLM costs", "Database", "Live connections"]
    assert len({p["id"] for p in panels}) == len(panels)
    positions = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert (grid["x"], grid["y"]) not in positions
        positions.add((grid["x"], grid["y"]))
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
            assert all(t["expr"] and t["refId"] for t in panel["targets"])
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job", "audience"}


def test_every_dashboard_query_parses_and_names_real_metrics(tmp_path: Path) -> None:
    records = []
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            assert set(METRIC_NAME.findall(expr)) <= exposed_names(), expr
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, expr
            records.append(
                {"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr}
            )
    assert len(records) >= 30
    rules = tmp_path / "dashboard_queries.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    assert f"SUCCESS: {len(records)} rules found" in promtool("check", "rules", rules)
