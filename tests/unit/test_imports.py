"""The domain's rules import nothing of the layers above them, nor a database or GraphQL
library: every module under domain/ (but domain/store/, the SQL beside them) is read with
`ast`, so the rule holds without importing anything. And the job worker, wired by the same
composition root as the gateway (switchboard/bootstrap.py), never loads the GraphQL stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
DOMAIN = PROJECT / "domain"
FORBIDDEN = {
    "sqlalchemy",
    "asyncpg",
    "strawberry",
    "loaders",
    "schema",
    "resolvers",
    "switchboard",
    "tasks",
}


def imported(module: Path) -> set[str]:
    """The top-level names of every module `module` imports (at any depth of its code)."""
    names = set()
    for node in ast.walk(ast.parse(module.read_text(), str(module))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name.partition(".")[0] for name in names}


def test_the_rules_import_no_sql_no_graphql_and_nothing_above_them() -> None:
    rules = [p for p in sorted(DOMAIN.rglob("*.py")) if "store" not in p.relative_to(DOMAIN).parts]
    assert len(rules) > 10  # the walk found the domain
    broken = {
        str(p.relative_to(DOMAIN)): sorted(imported(p) & FORBIDDEN)
        for p in rules
        if imported(p) & FORBIDDEN
    }
    assert broken == {}


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "rule.py"
    module.write_text("def f():\n    from sqlalchemy import text\n    import loaders.shapes\n")
    assert imported(module) & FORBIDDEN == {"sqlalchemy", "loaders"}


def test_the_worker_loads_no_graphql_stack() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tasks.worker; "
            "print(sorted({m.partition('.')[0] for m in sys.modules} & "
            "{'strawberry', 'graphql', 'schema', 'resolvers', 'loaders', 'qdrant_client'}))",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert loaded.stdout.strip() == "[]"
