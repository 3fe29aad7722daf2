"""Configuration is stated once: every knob is declared in switchboard/settings.py or
tasks/config.py, README.md's variable tables list exactly those knobs with their defaults,
the environment is parsed by type with errors that name the variable, and nothing else in
the application reads os.environ. No servers."""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from switchboard.settings import (
    DEFAULT_MANIFEST,
    PROJECT_DIR,
    ConfigError,
    KnobField,
    Settings,
    knob_fields,
    parse_value,
)
from tasks.config import JobSettings
from tests.unit.test_dependencies import APP_PACKAGES

README = PROJECT_DIR / "README.md"
KNOBS: dict[str, KnobField] = {
    field.knob.env: field for cls in (Settings, JobSettings) for field in knob_fields(cls)
}
# Variables the README documents that belong to libraries, which read them themselves.
FOREIGN = ("OTEL_", "PROMETHEUS_MULTIPROC_DIR")


# README.md's tables.


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _expand(names: list[str]) -> list[str]:
    """`SWITCHBOARD_DB_POOL_SIZE`, `…_MAX_OVERFLOW`: a `…_` name replaces the first name's
    words from the last one it starts with (`…_RETRY_MAX_S` after `…_JOB_RETRY_BASE_S`), or
    else as many trailing words as it has."""
    first = names[0].split("_")
    expanded = []
    for name in names:
        if name.startswith("…_"):
            tail = name.removeprefix("…_").split("_")
            kept = len(first) - len(tail)
            if tail[0] in first:
                kept = len(first) - 1 - first[::-1].index(tail[0])
            name = "_".join([*first[:kept], *tail])
        expanded.append(name)
    return expanded


def readme_rows() -> dict[str, str]:
    """Each variable of README.md's `| variable | default | meaning |` tables, with the
    default cell (split over the names when a row groups several)."""
    rows: dict[str, str] = {}
    in_table = False
    for line in README.read_text().splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if cells[:2] == ["variable", "default"]:
            in_table = True
            continue
        if not in_table or set(cells[0]) <= {"-", " "}:
            continue
        names = _expand(re.findall(r"`([^`]+)`", cells[0].split("(or")[0]))
        defaults = [cells[1]] * len(names)
        if len(names) > 1 and ", " in cells[1]:
            defaults = cells[1].split(", ")
        assert len(defaults) == len(names), f"README row {cells[0]}: one default per name"
        for name, default in zip(names, defaults, strict=True):
            assert name not in rows, f"{name} is in README.md twice"
            rows[name] = default
    return rows


def _states_default(field: KnobField, cell: str) -> bool:
    """Whether a README default cell says the knob's default."""
    text = cell.replace("`", "").strip()
    if field.knob.shown is not None:
        return text == field.knob.shown
    if text == "–":  # unset: nothing
        return field.default in (None, False, ())
    try:
        parsed = (field.knob.parse or (lambda raw: parse_value(field.type, raw)))(text)
    except ValueError:
        return False
    return bool(parsed == field.default)


def test_every_setting_is_a_knob_and_each_variable_is_declared_once() -> None:
    for cls in (Settings, JobSettings):
        names = {field.name for field in dataclasses.fields(cls)}
        assert names == {field.name for field in knob_fields(cls)}, f"{cls.__name__}: use knob()"
    declared = [field.knob.env for cls in (Settings, JobSettings) for field in knob_fields(cls)]
    assert len(declared) == len(set(declared)) == len(KNOBS)


def test_the_readme_lists_every_knob_and_only_knobs() -> None:
    documented = {name for name in readme_rows() if not name.startswith(FOREIGN)}
    assert sorted(documented - KNOBS.keys()) == [], "in README.md, but no knob reads them"
    assert sorted(KNOBS.keys() - documented) == [], "knobs README.md does not list"


def test_the_readme_states_each_knobs_default() -> None:
    rows = readme_rows()
    wrong = {
        env: (rows[env], field.knob.shown or field.default)
        for env, field in KNOBS.items()
        if env in rows and not _states_default(field, rows[env])
    }
    assert wrong == {}, "README default vs the declaration's"


# Parsing.


def test_unset_or_empty_variables_leave_every_default() -> None:
    assert Settings.from_env({}) == Settings()
    assert JobSettings.from_env({}) == JobSettings()
    empty = {env: "" for env in KNOBS}
    assert Settings.from_env(empty) == Settings()
    assert JobSettings.from_env(empty) == JobSettings()
    defaults = Settings()
    assert (defaults.db_pool_size, defaults.db_pool_timeout_s, defaults.mode) == (
        20,
        5.0,
        "development",
    )
    assert defaults.pq_manifests == (DEFAULT_MANIFEST,)
    assert defaults.live_relay and defaults.jwks_url is None


def test_each_variable_is_parsed_by_its_fields_type() -> None:
    tenants = [uuid.uuid4(), uuid.uuid4()]
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+asyncpg://db/x",
            "SWITCHBOARD_DB_POOL_SIZE": "4",
            "SWITCHBOARD_DB_POOL_TIMEOUT_S": "0.25",
            "SWITCHBOARD_TRACE_RESOLVERS": "yes",
            "SWITCHBOARD_STATE_DIR": "/srv/switchboard",
            "SWITCHBOARD_PQ_MANIFESTS": "/a/one.json:/b/two.json",
            "SWITCHBOARD_LOG_LEVEL": "warning",
            "SWITCHBOARD_LOG_FORMAT": "TEXT",
            "SWITCHBOARD_LIVE_RELAY_OFF": "1",
            "SWITCHBOARD_SKILL_EMBEDDING": " minilm ",
            "QDRANT_URL": " http://qdrant:6333 ",
        }
    )
    assert settings.database_url == "postgresql+asyncpg://db/x"
    assert (settings.db_pool_size, settings.db_pool_timeout_s) == (4, 0.25)
    assert settings.trace_resolvers is True
    assert settings.state_dir == Path("/srv/switchboard")
    # The mobile manifest always comes first; the variable adds to it.
    assert settings.pq_manifests == (DEFAULT_MANIFEST, Path("/a/one.json"), Path("/b/two.json"))
    assert (settings.log_level, settings.log_format) == ("WARNING", "text")
    assert settings.live_relay is False
    assert (settings.skill_embedding, settings.qdrant_url) == ("minilm", "http://qdrant:6333")
    jobs = JobSettings.from_env(
        {
            "SWITCHBOARD_WORKER_TENANTS": f"{tenants[0]}, {tenants[1]}",
            "SWITCHBOARD_WORKER_SCHEDULER": "0",
            "SWITCHBOARD_WORKER_METRICS_PORT": "9464",
            "SWITCHBOARD_JOB_LEASE_S": "3",
        }
    )
    assert jobs.tenants == tuple(tenants)
    assert (jobs.scheduler, jobs.metrics_port, jobs.lease_s) == (False, 9464, 3.0)


@pytest.mark.parametrize("raw", ["1", "true", "YES", " on "])
def test_true_booleans(raw: str) -> None:
    assert Settings.from_env({"SWITCHBOARD_OTLP_INLINE": raw}).otlp_inline is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off"])
def test_false_booleans(raw: str) -> None:
    assert Settings.from_env({"SWITCHBOARD_RATE_LIMIT": raw}).rate_limit is False
    assert JobSettings.from_env({"SWITCHBOARD_WORKER_SCHEDULER": raw}).scheduler is False


def test_rate_limits_and_the_response_cache_are_off_in_test_mode_unless_turned_on() -> None:
    test_mode = Settings.from_env({"SWITCHBOARD_MODE": "test"})
    assert not test_mode.rate_limit_enabled and not test_mode.response_cache_enabled
    production = Settings.from_env({"SWITCHBOARD_MODE": "production"})
    assert production.rate_limit_enabled and production.response_cache_enabled
    turned_on = Settings.from_env(
        {
            "SWITCHBOARD_MODE": "test",
            "SWITCHBOARD_RATE_LIMIT": "1",
            "SWITCHBOARD_RESPONSE_CACHE": "1",
        }
    )
    assert turned_on.rate_limit_enabled and turned_on.response_cache_enabled
    turned_off = Settings.from_env({"SWITCHBOARD_RATE_LIMIT": "0"})
    assert not turned_off.rate_limit_enabled and turned_off.response_cache_enabled


def test_overrides_win_over_the_environment() -> None:
    settings = Settings.from_env({"SWITCHBOARD_DB_POOL_SIZE": "4"}, db_pool_size=2)
    assert settings.db_pool_size == 2


@pytest.mark.parametrize(
    ("env", "raw", "message"),
    [
        ("SWITCHBOARD_DB_POOL_SIZE", "abc", "SWITCHBOARD_DB_POOL_SIZE must be an integer"),
        ("SWITCHBOARD_DB_POOL_SIZE", "2.5", "SWITCHBOARD_DB_POOL_SIZE must be an integer"),
        ("SWITCHBOARD_REDIS_RETRY_S", "2s", "SWITCHBOARD_REDIS_RETRY_S must be a number"),
        ("SWITCHBOARD_RATE_LIMIT", "maybe", "SWITCHBOARD_RATE_LIMIT must be a boolean"),
        ("SWITCHBOARD_LIVE_RELAY_OFF", "relay", "SWITCHBOARD_LIVE_RELAY_OFF must be a boolean"),
        ("SWITCHBOARD_SKILL_EMBEDDING", "bert", "SWITCHBOARD_SKILL_EMBEDDING must be `lexical`"),
        ("SWITCHBOARD_WORKER_TENANTS", "acme", "SWITCHBOARD_WORKER_TENANTS must be comma-sep"),
        ("SWITCHBOARD_WORKER_METRICS_PORT", "http", "METRICS_PORT must be an integer"),
        ("REDIS_SENTINELS", "sentinel-1", "REDIS_SENTINELS must be comma-separated host:port"),
        ("REDIS_SENTINELS", "a:26379,b:x", "REDIS_SENTINELS must be comma-separated host:port"),
    ],
)
def test_a_bad_value_names_its_variable(env: str, raw: str, message: str) -> None:
    cls: Any = JobSettings if env in {f.knob.env for f in knob_fields(JobSettings)} else Settings
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        cls.from_env({env: raw})
    assert repr(raw) in str(raised.value)  # what was wrong, as given


def test_sentinels_replace_the_redis_url_and_need_the_master_name() -> None:
    env = {"DATABASE_URL": "postgresql+asyncpg://db/x", "REDIS_SENTINELS": "s1:26379, [::1]:26380"}
    settings = Settings.from_env(env)
    assert settings.redis_sentinels == (("s1", 26379), ("::1", 26380))
    with pytest.raises(ConfigError, match="REDIS_SENTINEL_SERVICE not set"):
        settings.server_urls()
    named = Settings.from_env({**env, "REDIS_SENTINEL_SERVICE": "main"})
    assert named.server_urls() == ("postgresql+asyncpg://db/x", None)
    with pytest.raises(ConfigError, match="REDIS_URL not set"):
        Settings.from_env({"DATABASE_URL": "postgresql+asyncpg://db/x"}).server_urls()


def test_a_bad_value_stops_the_command_before_anything_starts(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "migrate"],
        env={
            "PATH": "/usr/bin:/bin",
            "SWITCHBOARD_STATE_DIR": str(state_dir),
            "SWITCHBOARD_DB_POOL_SIZE": "abc",
        },
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "SWITCHBOARD_DB_POOL_SIZE must be an integer, not 'abc'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not state_dir.exists()  # no embedded server was started


# Nothing else reads the environment.

# Besides the settings' own (reading the knobs, handing the environment to child
# processes), not configuration reads: prometheus multiprocess mode's folder (set before
# prometheus_client loads), the OpenTelemetry SDK's own OTEL_* variables, and the offline
# switches of the Hugging Face libraries.
ALLOWED = {
    ("switchboard/settings.py", "FromEnv.from_env"),
    ("switchboard/settings.py", "child_environment"),
    ("switchboard/observability/metrics.py", "multiprocess_dir"),
    ("switchboard/observability/metrics.py", "prepare_multiprocess_dir"),
    ("switchboard/observability/tracing.py", "configure_from_env"),
    ("switchboard/observability/tracing.py", "_resource"),
    ("switchboard/skill_search/embeddings.py", "MiniLMEmbedder.__init__"),
}


class _EnvironmentUses(ast.NodeVisitor):
    def __init__(self) -> None:
        self.scope: list[str] = []
        self.found: list[tuple[str, int]] = []

    def _enter(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _enter

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if (
            isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ("environ", "environb", "getenv", "getenvb", "putenv", "unsetenv")
        ):
            self.found.append((".".join(self.scope), node.lineno))
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "os" and {a.name for a in node.names} & {"environ", "getenv"}:
            self.found.append((".".join(self.scope), node.lineno))


def test_nothing_but_the_settings_reads_the_environment() -> None:
    uses = []
    for package in APP_PACKAGES:
        for path in sorted((PROJECT_DIR / package).rglob("*.py")):
            visitor = _EnvironmentUses()
            visitor.visit(ast.parse(path.read_text(), str(path)))
            relative = path.relative_to(PROJECT_DIR).as_posix()
            uses += [
                f"{relative}:{line} ({scope or 'module'})"
                for scope, line in visitor.found
                if (relative, scope) not in ALLOWED
            ]
    assert uses == [], "read configuration through Settings or JobSettings instead"
