"""Global IDs: what the API shows for a row's UUID, and back.

An ID is a short kind prefix and the row's UUID in hex, e.g. `cmp_0f1e…`. The prefix
lets `node(id:)` know which table to look in without a query, and makes IDs readable
in logs. A well-formed ID of another tenant is simply not found by the tenant-scoped
queries; a malformed one is BAD_USER_INPUT.
"""

from __future__ import annotations

import uuid

from domain.errors import BadUserInput

PREFIX_BY_KIND = {
    "Tenant": "ten",
    "User": "usr",
    "Agent": "agt",
    "Campaign": "cmp",
    "Deliverable": "dlv",
    "Activity": "act",
    "Approval": "apr",
    "LlmCall": "llm",
    "Skill": "skl",
}
KIND_BY_PREFIX = {prefix: kind for kind, prefix in PREFIX_BY_KIND.items()}


def to_global_id(kind: str, row_id: uuid.UUID) -> str:
    return f"{PREFIX_BY_KIND[kind]}_{row_id.hex}"


def parse_global_id(global_id: str) -> tuple[str, uuid.UUID]:
    """(kind, uuid) of an ID; BadUserInput when it is not one of ours."""
    prefix, _, hex_part = global_id.partition("_")
    kind = KIND_BY_PREFIX.get(prefix)
    if kind is None or len(hex_part) != 32:
        raise BadUserInput(f"Malformed ID: {global_id[:80]!r}")
    try:
        return kind, uuid.UUID(hex=hex_part)
    except ValueError:
        raise BadUserInput(f"Malformed ID: {global_id[:80]!r}") from None


def parse_id_of(kind: str, global_id: str) -> uuid.UUID | None:
    """The UUID of an ID expected to be of `kind`; None when it is of another kind."""
    found_kind, row_id = parse_global_id(global_id)
    return row_id if found_kind == kind else None
