"""The contract's operations, read from the project's copy, contract/operations/."""

from __future__ import annotations

from pathlib import Path

from switchboard.settings import PROJECT_DIR

CONTRACT_DIR = PROJECT_DIR / "contract"
# Values for the variables the contract's queries declare (windows within the seeded data).
VARIABLES = {
    "monthStart": "2026-11-01T00:00:00Z",
    "monthEnd": "2026-12-01T00:00:00Z",
    "from": "2026-08-01T00:00:00Z",
    "to": "2026-12-01T00:00:00Z",
    "query": "headline formulas",
}


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


def operation(client: str, name: str) -> str:
    """The text of one of the contract's operations (`operation("dashboard", "UpdateCampaign")`)."""
    return (CONTRACT_DIR / "operations" / client / f"{name}.graphql").read_text()
