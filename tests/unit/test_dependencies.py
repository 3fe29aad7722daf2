"""pyproject.toml declares every package the code imports, and only those."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from switchboard.settings import PROJECT_DIR

APP_PACKAGES = ("switchboard", "schema", "resolvers", "loaders", "domain", "tasks", "migrations")
OWN = {*APP_PACKAGES, "tests", "perf", "ops"}


def _imported_modules(folders: tuple[str, ...]) -> set[str]:
    """Top-level names of every module imported (anywhere in the file) under `folders`."""
    names: set[str] = set()
    for folder in folders:
        for path in (PROJECT_DIR / folder).rglob("*.py"):
            if "node_modules" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names - OWN - set(sys.stdlib_module_names) - {"__future__"}


def _providers(modules: set[str]) -> dict[str, set[str]]:
    """Each module's installed distributions, normalised (a namespace package such as
    `opentelemetry` has several); a module of an extra that is not installed counts as the
    distribution of its own name."""
    provided = packages_distributions()
    return {
        module: {_normalise(name) for name in provided.get(module, [module])} for module in modules
    }


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_normalise(re.split(r"[\[=<>~!; ]", line, maxsplit=1)[0]) for line in requirements}


def _project() -> dict:
    return tomllib.loads(Path(PROJECT_DIR / "pyproject.toml").read_text())["project"]


def test_the_app_imports_exactly_what_it_declares() -> None:
    project = _project()
    declared = _declared(project["dependencies"])
    extras = _declared(project["optional-dependencies"]["minilm"])
    providers = _providers(_imported_modules(APP_PACKAGES))
    undeclared = {m for m, dists in providers.items() if not dists & (declared | extras)}
    assert undeclared == set(), "imported by the app but not declared"
    imported = set().union(*providers.values())
    assert declared - imported == set(), "declared but never imported by the app"


def test_the_tests_import_only_what_is_declared() -> None:
    project = _project()
    declared = _declared(project["dependencies"]) | _declared(
        project["optional-dependencies"]["test"]
    )
    providers = _providers(_imported_modules(("tests",)))
    undeclared = {m for m, dists in providers.items() if not dists & declared}
    assert undeclared == set(), "imported by the tests but not declared"
