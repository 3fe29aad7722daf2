"""Skills: markdown instructions for agents, and the rules around them.

A skill belongs to one tenant, or is global (`tenant_id` NULL) and then visible to every
tenant; a tenant sees its own skills and the global ones, never another tenant's. A skill
has a name (unique within its tenant, case-insensitively; the global skills form one
namespace of their own), an optional role, a one-line summary and its content.

What this module owns: validation of a skill's fields and of a search, who may change a
skill, and the shapes the store answers with. The SQL (`create_skill` / `update_skill`,
two-stage loading for agent runs, the search index's source) is domain/store/skills.py.

Nothing here knows of GraphQL, HTTP, Redis or the index: callers tell the index about a
change after their commit (`switchboard.skill_search.skills_changed`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.enums import AgentRole
from domain.errors import BadUserInput, Rejected

MAX_NAME = 100
MAX_SUMMARY = 160
MAX_CONTENT = 20_000  # characters of markdown; a skill is read whole into an agent's prompt
ROLES = frozenset(role.value for role in AgentRole)
MAX_QUERY = 1000  # characters of a skillSearch query
MAX_RESULTS = 50  # skillSearch's largest `first`
# How many skills one run may load: a runtime asking for more is told no (prompt size).
MAX_LOADED_PER_RUN = 3


@dataclass(frozen=True, slots=True)
class SkillRow:
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    name: str
    role: str | None
    summary: str
    content: str
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    name: str
    summary: str


def _has_control(value: str, allow_newlines: bool) -> bool:
    allowed = "\n\t\r" if allow_newlines else ""
    return any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in value)


def clean_fields(fields: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """The validated fields (trimmed); a field with a problem raises Rejected naming it.
    `partial`: an update, where absent fields stay as they are."""
    out: dict[str, Any] = {}
    for key in ("name", "summary", "content"):
        if key not in fields:
            if not partial:
                raise Rejected("INVALID", f"`{key}` is required.", "input", key)
            continue
        value = fields[key]
        if not isinstance(value, str):
            raise Rejected("INVALID", f"`{key}` may not be null.", "input", key)
        value = value.strip()
        limit = {"name": MAX_NAME, "summary": MAX_SUMMARY, "content": MAX_CONTENT}[key]
        if not 1 <= len(value) <= limit:
            raise Rejected("INVALID", f"`{key}` holds 1 to {limit} characters.", "input", key)
        if _has_control(value, allow_newlines=key == "content"):
            what = "control characters" if key == "content" else "line breaks or control characters"
            raise Rejected("INVALID", f"`{key}` may not hold {what}.", "input", key)
        out[key] = value
    if "role" in fields:
        role = fields["role"]
        if role is not None and str(role) not in ROLES:
            raise Rejected("INVALID", "Not an agent role.", "input", "role")
        out["role"] = None if role is None else str(role)
    return out


def check_owner(owner: uuid.UUID | None, tenant_id: uuid.UUID | None) -> None:
    """Rejected unless the tenant (None: the global scope) may change a skill of `owner`:
    another tenant's skill is NOT_FOUND; a global skill seen from a tenant is FORBIDDEN
    (it is shared by all)."""
    if owner is not None and owner != tenant_id:
        raise Rejected("NOT_FOUND", "No skill has this ID.", "id")
    if owner != tenant_id:
        raise Rejected("FORBIDDEN", "Global skills are shared by every tenant.", "id")


def search_terms(query: str, first: int | None) -> tuple[str, int]:
    """A skillSearch's query (whitespace collapsed) and `first`, or BadUserInput saying
    what is wrong with them."""
    if len(query) > MAX_QUERY:
        raise BadUserInput(f"`query` holds at most {MAX_QUERY} characters ({len(query)} given).")
    if _has_control(query, allow_newlines=True):
        raise BadUserInput("`query` may not hold control characters.")
    normalized = " ".join(query.split())
    if not normalized:
        raise BadUserInput("`query` must hold at least one character that is not a space.")
    first = 5 if first is None else first
    if not 1 <= first <= MAX_RESULTS:
        raise BadUserInput(f"`first` must be between 1 and {MAX_RESULTS} ({first} given).")
    return normalized, first
