"""README.md's layout table ("How it is built") matches the tree: every package of the
project has its row, and every file a row names exists in that folder."""

from __future__ import annotations

import re
from pathlib import Path

from switchboard.settings import PROJECT_DIR

README = PROJECT_DIR / "README.md"
TOP = ("switchboard", "schema", "resolvers", "loaders", "domain", "tasks")


def layout_rows(readme: str) -> dict[str, str]:
    """folder → what its row says it owns."""
    table = readme.split("| folder | owns |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        folder, owns = re.match(r"\| `([^`]+)` \| (.*) \|$", line).groups()
        rows[folder.rstrip("/")] = owns
    return rows


def packages() -> set[str]:
    return {
        str(init.parent.relative_to(PROJECT_DIR))
        for top in TOP
        for init in (PROJECT_DIR / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_every_package_has_its_row() -> None:
    rows = layout_rows(README.read_text())
    # A package without a row of its own is described by its parent's row, one level up.
    missing = sorted(p for p in packages() if p not in rows and str(Path(p).parent) not in rows)
    assert missing == []


def test_every_file_a_row_names_exists() -> None:
    rows = layout_rows(README.read_text())
    named = {
        (folder, name)
        for folder, owns in rows.items()
        for name in re.findall(r"`([\w./-]+\.(?:py|md|graphql|json))`", owns)
    }
    assert len(named) > 20
    absent = sorted(f"{folder}/{name}" for folder, name in named if not _exists(folder, name))
    assert absent == []


def _exists(folder: str, name: str) -> bool:
    return (PROJECT_DIR / folder / name).exists() or (PROJECT_DIR / name).exists()


def test_the_check_sees_a_row_that_names_a_missing_file() -> None:
    readme = "| folder | owns |\n| --- | --- |\n| `loaders/` | rows (`shapes.py`, `gone.py`) |\n\n"
    rows = layout_rows(readme)
    assert rows == {"loaders": "rows (`shapes.py`, `gone.py`)"}
    assert _exists("loaders", "shapes.py") and not _exists("loaders", "gone.py")
