"""The Redis key of a cached membership, and how a write drops it.

The edge's `Authenticator` caches who belongs to which tenant (and with which role) under
`membership_key`; a mutation that changes a membership or an agent's status calls
`forget_membership` after its commit, so the next request checks the database again.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis


def membership_key(subject_id: uuid.UUID, tenant_id: uuid.UUID) -> str:
    return f"auth:membership:{subject_id.hex}:{tenant_id.hex}"


async def forget_membership(redis: Redis, subject_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
    """Call after a membership (or an agent's status) changes, so the next request rechecks."""
    await redis.delete(membership_key(subject_id, tenant_id))
