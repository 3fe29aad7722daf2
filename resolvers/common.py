"""What every mutation resolver shares: roles, input IDs, user errors and the audit entry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from domain.errors import Forbidden
from domain.ids import KIND_BY_PREFIX, PREFIX_BY_KIND
from schema.mutations import UserError
from schema.types import Info
from switchboard.infra.audit import AuditEntry

# Who may call what (the contract's README): VIEWER reads; MARKETER also works on
# campaigns, deliverables, activities and approvals; ADMIN and OWNER also change agents and
# budgets. Agent tokens call only the two agent mutations.
MARKETERS = frozenset({"MARKETER", "ADMIN", "OWNER"})
ADMINS = frozenset({"ADMIN", "OWNER"})
USERS = frozenset({"VIEWER", "MARKETER", "ADMIN", "OWNER"})


async def committed(info: Info) -> None:
    """After a write commits: the tenant's reads (this payload's, and the next requests' in
    any gateway process) wait for a read replica that has replayed it (infra/replicas.py)."""
    replicas = info.context.db.replicas
    if replicas is not None:
        await replicas.wrote([info.context.principal.tenant_id])


def require_role(info: Info, allowed: frozenset[str]) -> None:
    principal = info.context.principal
    if principal.is_agent or principal.role not in allowed:
        raise Forbidden("Your role may not do this.")


def require_agent(info: Info) -> None:
    if not info.context.principal.is_agent:
        raise Forbidden("Only agent runtimes may do this.")


@dataclass
class Problems:
    """User errors collected while checking an input; empty means the input is good."""

    errors: list[UserError] = field(default_factory=list)

    def add(self, code: str, message: str, *path: str) -> None:
        self.errors.append(UserError(field=list(path), message=message, code=code))

    def __bool__(self) -> bool:
        return bool(self.errors)


def input_id(problems: Problems, kind: str, value: str, *path: str) -> uuid.UUID | None:
    """The UUID of an input ID of `kind`; adds a NOT_FOUND (wrong kind) or INVALID problem."""
    prefix, _, hex_part = str(value).partition("_")
    if prefix not in KIND_BY_PREFIX or len(hex_part) != 32:
        problems.add("INVALID", f"Not an ID: {str(value)[:80]!r}.", *path)
        return None
    if prefix != PREFIX_BY_KIND[kind]:
        problems.add("NOT_FOUND", f"No {kind.lower()} has this ID.", *path)
        return None
    try:
        return uuid.UUID(hex=hex_part)
    except ValueError:
        problems.add("INVALID", f"Not an ID: {str(value)[:80]!r}.", *path)
        return None


def audit(
    info: Info,
    action: str,
    target_type: str,
    target_id: uuid.UUID | None,
    details: dict[str, object] | None = None,
) -> None:
    principal = info.context.principal
    info.context.services.audit.record(
        AuditEntry(
            tenant_id=principal.tenant_id,
            actor_id=principal.subject_id,
            actor_kind="AGENT" if principal.is_agent else "USER",
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details,
        )
    )
