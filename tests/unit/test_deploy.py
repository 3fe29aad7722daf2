"""The deployment recipe in deploy/ agrees with the code: the lock holds pyproject's pins,
the image runs `switchboard` as a user, and every container of the Compose file and the
Kubernetes manifests runs a command the CLI's own parser accepts, sets only variables a
setting reads, listens and is probed on the port its command serves, at paths the app
routes. No server and no container runtime: the files are parsed."""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from switchboard import cli
from switchboard.settings import PROJECT_DIR, Settings, knob_fields
from tasks.config import JobSettings

DEPLOY = PROJECT_DIR / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
IMAGE = "switchboard"  # the image's name in compose.yaml (with a tag) and the manifests
KNOWN = {field.knob.env for cls in (Settings, JobSettings) for field in knob_fields(cls)}
# Not read by a knob: Python's own, and pip's while the image is built.
STANDARD = {"PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK"}
ALLOWED_ENV = KNOWN | STANDARD


# The CLI's parser and the app's routes.


def parse_cli(argv: list[str]) -> argparse.Namespace:
    """`argv` as `switchboard`'s own parser reads it; a command it refuses fails the test
    with argparse's message."""
    try:
        return cli.build_parser().parse_args(argv)
    except SystemExit as refused:
        pytest.fail(f"`switchboard {shlex.join(argv)}` is refused by the CLI ({refused})")


@pytest.fixture(scope="module")
def routes() -> set[str]:
    """The HTTP paths of a gateway's app, built (not started) against addresses that are
    never connected to."""
    from switchboard.app import create_app

    app = create_app(
        Settings(
            mode="test",
            database_url="postgresql+asyncpg://deploy:test@nowhere.invalid/switchboard",
            redis_url="redis://nowhere.invalid:6379/0",
        )
    )
    return {route.path for route in app.routes if getattr(route, "methods", None)}


# The lock.


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (DEPLOY / "requirements.lock").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, separator, version = line.partition("==")
        assert separator and version.strip(), f"requirements.lock: {line!r} is not pinned"
        pins[canonicalize_name(name)] = version.strip()
    return pins


def _project() -> dict[str, Any]:
    return tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]


def test_the_lock_pins_every_direct_dependency_at_pyprojects_version() -> None:
    lock = _lock()
    for line in _project()["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement.name} is not in deploy/requirements.lock"
        pinned = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if pinned:
            assert lock[name] == pinned[0], f"{name}: lock {lock[name]}, pyproject {pinned[0]}"
        assert requirement.specifier.contains(lock[name]), f"{name} {lock[name]} vs {line}"


def test_the_lock_is_the_runtime_tree_only() -> None:
    lock = _lock()
    assert "switchboard" not in lock  # installed from the tree, after the lock
    extras = _project()["optional-dependencies"]
    only_extras = {
        canonicalize_name(Requirement(line).name)
        for group in ("test", "perf", "minilm")
        for line in extras[group]
    } - {canonicalize_name(Requirement(line).name) for line in _project()["dependencies"]}
    # Some test packages come with runtime ones (pyyaml, cryptography, websockets): those
    # that do not must not be in the image.
    for name in ("pytest", "ruff", "schemathesis", "hypothesis", "grimp", "torch"):
        assert canonicalize_name(name) in only_extras
        assert canonicalize_name(name) not in lock, f"{name} is a test or extra dependency"


# The image.


def containerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Containerfile, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Containerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending += " " + line.removesuffix("\\").strip()
        if line.endswith("\\"):
            continue
        word, _, rest = pending.strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
        pending = ""
    return instructions


def _all(name: str) -> list[str]:
    return [rest for word, rest in containerfile() if word == name]


def _one(name: str) -> str:
    (rest,) = _all(name)
    return rest


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in _all("ENV"):
        for pair in shlex.split(rest):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def image_uid() -> int:
    return int(_one("USER").split(":")[0])


def test_the_image_runs_switchboard_as_a_user_not_root() -> None:
    assert image_uid() != 0
    assert json.loads(_one("ENTRYPOINT")) == ["switchboard"]


def test_the_image_installs_the_lock_then_the_project_without_resolving() -> None:
    runs = " && ".join(_all("RUN"))
    assert re.search(r"pip install --no-deps -r deploy/requirements\.lock", runs)
    assert re.search(r"pip install --no-deps .*-e \.", runs)
    copied = [part for rest in _all("COPY") for part in rest.split()[:-1]]
    for source in copied:
        assert (PROJECT_DIR / source).exists(), f"COPY {source}: no such file"
    # What the code reads beside its packages (settings.PROJECT_DIR), and every package.
    packages = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["setuptools"]
    needed = {"alembic.ini", "migrations", "contract", "pyproject.toml"}
    needed |= {name.rstrip("*") for name in packages["packages"]["find"]["include"]}
    assert needed <= set(copied), f"the image lacks {sorted(needed - set(copied))}"


def test_the_images_default_command_is_a_gateway_on_its_exposed_port() -> None:
    args = parse_cli(json.loads(_one("CMD")))
    assert args.command == "serve" and args.job_workers == 0
    assert args.host == "0.0.0.0"
    assert [int(port) for port in _one("EXPOSE").split()] == [args.port]


def test_the_image_sets_only_known_variables() -> None:
    env = image_env()
    assert set(env) <= ALLOWED_ENV, sorted(set(env) - ALLOWED_ENV)
    assert env["SWITCHBOARD_MODE"] == "production"
    Settings.from_env(env)  # every value parses


# Compose.


def _interpolate(value: Any) -> Any:
    """Compose's `${VAR}`, `${VAR:?message}` and `${VAR:-default}` as if VAR were `secret`
    (`$$` is a `$` left for the container's shell)."""
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    if isinstance(value, str):
        return re.sub(r"(?<!\$)\$\{[A-Za-z_][A-Za-z0-9_]*(?:[:?-][^}]*)?\}", "secret", value)
    return value


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = _interpolate(data["services"])
    return services


def switchboard_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose().items()
        if service.get("image", "").split(":")[0] == IMAGE
    }


def _port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def _probe_urls(text: str) -> list[str]:
    return re.findall(r"http://127\.0\.0\.1:\d+/[\w/]*", text)


def test_compose_runs_a_migration_two_gateways_and_two_workers() -> None:
    commands = {
        name: parse_cli(service["command"]) for name, service in switchboard_services().items()
    }
    assert {name: args.command for name, args in commands.items()} == {
        "migrate": "migrate",
        "gateway-1": "serve",
        "gateway-2": "serve",
        "worker": "worker",
    }
    assert compose()["worker"]["deploy"]["replicas"] == 2
    for name in ("gateway-1", "gateway-2"):
        assert commands[name].job_workers == 0, f"{name} runs job workers besides the gateway"
        assert commands[name].host == "0.0.0.0"
    for name in ("gateway-1", "gateway-2", "worker"):
        waits = compose()[name]["depends_on"]["migrate"]
        assert waits == {"condition": "service_completed_successfully"}


def test_compose_sets_only_known_variables_and_valid_values() -> None:
    for name, service in switchboard_services().items():
        env = service["environment"]
        assert set(env) <= ALLOWED_ENV, f"{name}: {sorted(set(env) - ALLOWED_ENV)}"
        known = {key: str(value) for key, value in env.items() if key in KNOWN}
        Settings.from_env(known)
        JobSettings.from_env(known)


def test_compose_migrates_directly_and_serves_through_pgbouncer() -> None:
    services = compose()
    ini = pgbouncer_ini()
    assert urlsplit(services["migrate"]["environment"]["DATABASE_URL"]).netloc.endswith(
        "@postgres:5432"
    )
    for name in ("gateway-1", "gateway-2", "worker"):
        env = services[name]["environment"]
        url = urlsplit(env["DATABASE_URL"])
        assert (url.hostname, url.port) == ("pgbouncer", int(ini["listen_port"]))
        assert url.path.lstrip("/") in pgbouncer_databases()
        # Transaction pooling: no prepared statement outlives its transaction.
        assert env["SWITCHBOARD_DB_STATEMENT_CACHE_SIZE"] == "0"
    mounts = [volume.split(":")[:2] for volume in services["pgbouncer"]["volumes"]]
    assert ["./pgbouncer/pgbouncer.ini", "/etc/pgbouncer/pgbouncer.ini"] in mounts
    assert "/etc/pgbouncer/pgbouncer.ini" in " ".join(services["pgbouncer"]["command"])


def pgbouncer_ini() -> dict[str, str]:
    return _ini_section("pgbouncer")


def pgbouncer_databases() -> dict[str, str]:
    return _ini_section("databases")


def _ini_section(wanted: str) -> dict[str, str]:
    section, values = "", {}
    for raw in (DEPLOY / "pgbouncer/pgbouncer.ini").read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == wanted:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_pgbouncer_pools_transactions_25_connections_to_postgres() -> None:
    ini = pgbouncer_ini()
    assert ini["pool_mode"] == "transaction"
    assert ini["default_pool_size"] == "25"
    # The gateway's statement_timeout reaches PostgreSQL on every server connection.
    assert "statement_timeout" in ini["track_extra_parameters"]
    (target,) = pgbouncer_databases().values()
    assert "host=postgres port=5432" in target


def test_compose_ports_and_health_checks_match_what_the_commands_serve(routes: set[str]) -> None:
    for name, service in switchboard_services().items():
        args = parse_cli(service["command"])
        for mapping in service.get("ports", []):
            assert int(str(mapping).split(":")[-1]) == args.port, f"{name} publishes {mapping}"
        urls = _probe_urls(" ".join(service.get("healthcheck", {}).get("test", [])))
        if args.command == "serve":
            assert urls, f"{name} has no health check"
            for url in urls:
                assert _port_of(url) == args.port and urlsplit(url).path in routes, url
        elif args.command == "worker":
            port = int(service["environment"]["SWITCHBOARD_WORKER_METRICS_PORT"])
            assert [_port_of(url) for url in urls] == [port]


def _seconds(text: str) -> float:
    return float(text.removesuffix("s"))


def test_compose_gives_each_process_its_whole_stop_before_killing_it() -> None:
    services = compose()
    for name in ("gateway-1", "gateway-2"):
        stop_s = float(services[name]["environment"]["SWITCHBOARD_STOP_TIMEOUT_S"])
        assert _seconds(services[name]["stop_grace_period"]) > stop_s
    grace_s = float(services["worker"]["environment"]["SWITCHBOARD_WORKER_GRACE_S"])
    # tasks/worker.py waits up to 5 s more for jobs it hands back.
    assert _seconds(services["worker"]["stop_grace_period"]) > grace_s + 5


def test_compose_runs_valkey_with_a_replica_and_three_sentinels() -> None:
    services = compose()
    replica = services["valkey-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 :][:2] == ["valkey-primary", "6379"]
    conf = (DEPLOY / "valkey/sentinel.conf").read_text()
    monitor = re.search(r"^sentinel monitor (\S+) (\S+) (\d+) (\d+)$", conf, re.M)
    assert monitor and monitor.groups() == ("switchboard", "valkey-primary", "6379", "2")
    sentinel_port = re.search(r"^port (\d+)$", conf, re.M)
    assert sentinel_port
    sentinels = [name for name in services if name.startswith("sentinel-")]
    assert len(sentinels) == 3
    for name, env in ((n, s["environment"]) for n, s in switchboard_services().items()):
        addresses = env["REDIS_SENTINELS"].split(",")
        assert addresses == [f"{s}:{sentinel_port[1]}" for s in sentinels], name
        assert env["REDIS_SENTINEL_SERVICE"] == monitor[1]
        assert urlsplit(env["REDIS_URL"]).hostname == "valkey-primary"


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path: the host file it shows (paths relative to deploy/)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def test_every_bind_mount_is_a_file_of_the_repository() -> None:
    for name, service in compose().items():
        for target, source in _bind_mounts(service).items():
            assert source.exists(), f"{name} mounts {source} at {target}: no such file"


def test_compose_prometheus_loads_the_real_alert_rules_and_scrapes_gateways_and_workers() -> None:
    mounts = _bind_mounts(compose()["prometheus"])
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    rules = {path: mounts.get(path) for path in config["rule_files"]}
    assert rules == {"/etc/prometheus/rules/alerts.yml": PROJECT_DIR / "ops/prometheus/alerts.yml"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["switchboard"]
    (targets,) = [group["targets"] for group in job["static_configs"]]
    gateways = {}
    for name, service in switchboard_services().items():
        args = parse_cli(service["command"])
        if args.command == "serve":
            gateways[name] = args.port
    assert sorted(targets) == sorted(f"{name}:{port}" for name, port in gateways.items())
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # The workers' metrics: every replica of `worker`, on the port and address it serves.
    (workers,) = jobs["switchboard-workers"]["dns_sd_configs"]
    environment = compose()["worker"]["environment"]
    assert workers["names"] == ["worker"]
    assert workers["port"] == int(environment["SWITCHBOARD_WORKER_METRICS_PORT"])
    assert environment["SWITCHBOARD_WORKER_METRICS_HOST"] == "0.0.0.0"


def test_compose_grafana_provisions_the_real_dashboard() -> None:
    mounts = _bind_mounts(compose()["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    (provider,) = yaml.safe_load((provisioning / "dashboards/switchboard.yaml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    dashboards = {t: s for t, s in mounts.items() if t.startswith(folder + "/")}
    assert list(dashboards.values()) == [PROJECT_DIR / "ops/grafana/switchboard.json"]
    (source,) = yaml.safe_load((provisioning / "datasources/prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and urlsplit(source["url"]).hostname == "prometheus"


# Kubernetes.


@functools.cache
def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk, "kustomization.yaml lists every manifest"
    return [
        doc
        for resource in listed
        for doc in yaml.safe_load_all((KUBERNETES / resource).read_text())
        if doc
    ]


def kind(name: str, which: str) -> dict[str, Any]:
    (found,) = [m for m in manifests() if m["kind"] == which and m["metadata"]["name"] == name]
    return found


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for manifest in manifests():
        if manifest["kind"] in ("Deployment", "Job"):
            yield manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]


def _container_env(container: dict[str, Any]) -> dict[str, str]:
    """The variables a container gets: its ConfigMap's and Secrets' keys, then its env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for ref, which in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            if ref in source:
                data = kind(source[ref]["name"], which)
                env |= data.get("data", {}) | data.get("stringData", {})
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = kind(ref["name"], "Secret")["stringData"][ref["key"]]
    return env


def test_kubernetes_containers_set_only_known_variables_with_valid_values() -> None:
    for pod, spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            env = _container_env(container)
            assert set(env) <= ALLOWED_ENV, f"{pod}: {sorted(set(env) - ALLOWED_ENV)}"
            known = {key: value for key, value in env.items() if key in KNOWN}
            Settings.from_env(known)
            JobSettings.from_env(known)


def test_kubernetes_runs_commands_the_cli_accepts() -> None:
    commands = {}
    for pod, spec in pod_specs():
        assert spec["securityContext"]["runAsUser"] == image_uid()
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            assert container["image"] == IMAGE and "command" not in container  # the entrypoint
            commands[pod] = parse_cli(container["args"])
    assert {pod: args.command for pod, args in commands.items()} == {
        "switchboard-migrate": "migrate",
        "switchboard-gateway": "serve",
        "switchboard-worker": "worker",
    }
    assert commands["switchboard-gateway"].job_workers == 0


def test_migrations_and_the_wait_for_them_connect_to_postgres_directly() -> None:
    direct = _container_env(
        kind("switchboard-migrate", "Job")["spec"]["template"]["spec"]["containers"][0]
    )
    gateway = kind("switchboard-gateway", "Deployment")["spec"]["template"]["spec"]
    (wait,) = gateway["initContainers"]
    waits_on = _container_env(wait)
    serves_on = _container_env(gateway["containers"][0])
    assert urlsplit(direct["DATABASE_URL"]).hostname == "postgres"
    assert waits_on["DATABASE_URL"] == direct["DATABASE_URL"]
    assert urlsplit(serves_on["DATABASE_URL"]).hostname == "pgbouncer"
    assert serves_on["SWITCHBOARD_DB_STATEMENT_CACHE_SIZE"] == "0"


def test_the_gateways_wait_for_the_schema_with_code_that_exists() -> None:
    gateway = kind("switchboard-gateway", "Deployment")["spec"]["template"]["spec"]
    (wait,) = gateway["initContainers"]
    assert wait["command"][:2] == ["python", "-c"]
    tree = ast.parse(wait["command"][2])
    imported = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert any(node.module == "switchboard.infra.migrate" for node in imported)
    for node in imported:
        module = importlib.import_module(node.module or "")
        for alias in node.names:
            assert hasattr(module, alias.name), f"{node.module}.{alias.name} does not exist"


def _named_ports(container: dict[str, Any]) -> dict[str | int, int]:
    ports: dict[str | int, int] = {}
    for port in container.get("ports", []):
        ports[port["containerPort"]] = port["containerPort"]
        if "name" in port:
            ports[port["name"]] = port["containerPort"]
    return ports


def test_kubernetes_probes_ask_the_gateway_on_its_port_at_its_routes(routes: set[str]) -> None:
    spec = kind("switchboard-gateway", "Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    args = parse_cli(container["args"])
    ports = _named_ports(container)
    assert set(ports.values()) == {args.port}
    probes = {
        probe: (container[probe]["httpGet"]["path"], ports[container[probe]["httpGet"]["port"]])
        for probe in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    assert probes["readinessProbe"] == ("/readyz", args.port)
    assert probes["livenessProbe"] == ("/healthz", args.port)
    assert {path for path, _ in probes.values()} <= routes
    service = kind("switchboard-gateway", "Service")
    assert service["spec"]["selector"].items() <= spec_labels("switchboard-gateway").items()
    assert {ports[p["targetPort"]] for p in service["spec"]["ports"]} == {args.port}


def test_kubernetes_worker_probes_ask_its_metrics_port() -> None:
    spec = kind("switchboard-worker", "Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    port = int(_container_env(container)["SWITCHBOARD_WORKER_METRICS_PORT"])
    for probe in ("readinessProbe", "livenessProbe"):
        urls = _probe_urls(" ".join(container[probe]["exec"]["command"]))
        assert [_port_of(url) for url in urls] == [port], probe


def spec_labels(deployment: str) -> dict[str, str]:
    labels: dict[str, str] = kind(deployment, "Deployment")["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def test_a_stopping_gateway_pod_has_its_drain_and_whole_stop_timeout() -> None:
    spec = kind("switchboard-gateway", "Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    config = kind("switchboard", "ConfigMap")["data"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop_s = float(command[1])
    stop_s = float(config["SWITCHBOARD_STOP_TIMEOUT_S"])
    assert pre_stop_s > 0
    # SIGKILL comes terminationGracePeriodSeconds after the pod starts terminating, which
    # includes preStop; `serve` needs the whole stop timeout after SIGTERM.
    assert spec["terminationGracePeriodSeconds"] > pre_stop_s + stop_s
    worker = kind("switchboard-worker", "Deployment")["spec"]["template"]["spec"]
    grace_s = float(config["SWITCHBOARD_WORKER_GRACE_S"])
    assert worker["terminationGracePeriodSeconds"] > grace_s + 5  # + the hand-back


def test_the_gateway_has_a_disruption_budget_and_a_cpu_autoscaler() -> None:
    labels = spec_labels("switchboard-gateway")
    budget = kind("switchboard-gateway", "PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["minAvailable"] >= 1
    scaler = kind("switchboard-gateway", "HorizontalPodAutoscaler")["spec"]
    assert scaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "switchboard-gateway",
    }
    assert scaler["minReplicas"] > budget["minAvailable"]
    # The autoscaler owns the count: a `replicas` would reset it at every apply.
    assert "replicas" not in kind("switchboard-gateway", "Deployment")["spec"]
    (metric,) = scaler["metrics"]
    assert metric["resource"]["name"] == "cpu"
    (container,) = kind("switchboard-gateway", "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["resources"]["requests"]["cpu"]  # what utilisation is measured against


def test_secrets_are_in_secrets_and_settings_in_the_config_map() -> None:
    secret_knobs = {
        field.knob.env
        for cls in (Settings, JobSettings)
        for field in knob_fields(cls)
        if field.knob.secret
    } | {"DATABASE_URL", "REDIS_URL"}
    config = kind("switchboard", "ConfigMap")["data"]
    assert not secret_knobs & set(config), "a secret in the ConfigMap"
    secret = kind("switchboard", "Secret")["stringData"]
    assert {"DATABASE_URL", "REDIS_URL", "SWITCHBOARD_JWT_SECRET"} <= set(secret)
