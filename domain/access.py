"""Who is acting, and what they may read.

A user acts in one tenant with a role; an agent (token audience `agent`) acts for itself and
reads only its own activities and what those need (their deliverable, campaign, approval and
LLM calls), never tenant-wide lists, aggregates or other agents' work.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from domain.errors import Forbidden
from domain.ids import to_global_id


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent the request. `role` is the MemberRole for users, None for agents."""

    subject_id: uuid.UUID
    tenant_id: uuid.UUID
    audience: str
    is_agent: bool
    role: str | None
    expires_at: float

    @property
    def global_id(self) -> str:
        return to_global_id("Agent" if self.is_agent else "User", self.subject_id)


def require_member(principal: Principal) -> None:
    """Tenant-wide reads are for the tenant's users only."""
    if principal.is_agent:
        raise Forbidden("Agent tokens may not read this field.")


def require_member_or_self(principal: Principal, agent_id: uuid.UUID) -> None:
    """An agent's own activities and spend: its users, or the agent itself."""
    if principal.is_agent and principal.subject_id != agent_id:
        raise Forbidden("Agent tokens may not read this field.")
