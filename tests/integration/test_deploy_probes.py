"""The deployment recipe's probes answer: every path deploy/ probes a gateway at answers 200
from the gateway running in process against real servers, and deploy/'s Prometheus
configuration, with the alert rules it mounts, passes promtool."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.test_observability_ops import RULES, promtool
from tests.unit.test_deploy import (
    DEPLOY,
    _probe_urls,
    compose,
    kind,
    switchboard_services,
)


def gateway_probe_paths() -> set[str]:
    """What Compose's health checks and the gateway pods' probes ask for."""
    paths = set()
    for service in switchboard_services().values():
        if service["command"][0] == "serve":
            test = " ".join(service["healthcheck"]["test"])
            paths |= {urlsplit(url).path for url in _probe_urls(test)}
    spec = kind("switchboard-gateway", "Deployment")["spec"]["template"]["spec"]
    for container in spec["containers"]:
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if "httpGet" in container.get(probe, {}):
                paths.add(container[probe]["httpGet"]["path"])
    return paths


@pytest.mark.parametrize("path", sorted(gateway_probe_paths()))
async def test_each_probe_path_answers_200(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text


def test_the_compose_prometheus_configuration_passes_promtool(tmp_path: Path) -> None:
    mounted = {
        target: source
        for source, target, *_ in (v.split(":") for v in compose()["prometheus"]["volumes"])
    }
    config = (DEPLOY / "prometheus/prometheus.yml").read_text()
    # The rules where the container sees them, here the file compose.yaml mounts there.
    rules_in_container = next(t for t, s in mounted.items() if s.endswith("alerts.yml"))
    assert (DEPLOY / mounted[rules_in_container]).resolve() == RULES
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace(rules_in_container, str(RULES)))
    output = promtool("check", "config", local)
    assert "SUCCESS: 1 rule files found" in output
