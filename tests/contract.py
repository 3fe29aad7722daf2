"""The contract's operations, read from the project's copy, contract/operations/."""

from __future__ import annotations

from pathlib import Path

from switchboard.settings import PROJECT_DIR

CONTRACT_DIR = PROJECT_DIR / "contract"


def operation_files(*clients: str) -> list[Path]:
    return sorted(
        p for client in clients for p in (CONTRACT_DIR / "operations" / client).glob("*.graphql")
    )


def query_operations(*clients: str) -> dict[str, str]:
    """name → text of every query (not mutation or subscription) of those clients."""
    found = {}
    for path in operation_files(*clients):
        text = path.read_text()
        if text.lstrip().startswith("query"):
            found[path.stem] = text
    return found
