"""Who a token's subject is in its tenant: a user's membership role, or an agent that is not
terminated (switchboard/edge/auth.py asks, then caches the answer)."""

from __future__ import annotations

import uuid

from domain.store.reader import Reader

AGENT_SQL = (
    "SELECT 'AGENT' FROM agents WHERE id = :subject AND tenant_id = :tenant "
    "AND status <> 'TERMINATED'"
)
MEMBER_SQL = "SELECT role FROM memberships WHERE user_id = :subject AND tenant_id = :tenant"


async def membership(
    db: Reader, subject_id: uuid.UUID, tenant_id: uuid.UUID, is_agent: bool
) -> str | None:
    """The user's role in the tenant, `AGENT` for a working agent of it, None otherwise."""
    rows = await db.fetch(
        AGENT_SQL if is_agent else MEMBER_SQL, {"subject": subject_id, "tenant": tenant_id}
    )
    return str(rows[0][0]) if rows else None
