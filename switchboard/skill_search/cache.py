"""Cached skillSearch results in Redis: 15 minutes, keyed by the sha256 of what decides them.

The key is `sb:skills:q:<sha256>` over the tenant, the query (whitespace collapsed, as the
search sees it), the filters (role, first), the embedder's name and the skills generation
(changes.py). A change to any skill bumps the generation, so every cached result of every
tenant is retired at once without deleting a key; the old entries run out by TTL. The value
is the hits as JSON (the skill's fields and score): a cached answer needs neither Qdrant nor
PostgreSQL.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from switchboard.skill_search.index import Hit

TTL_S = 15 * 60
PREFIX = "sb:skills:q:"


def cache_key(
    tenant_id: uuid.UUID,
    query: str,
    role: str | None,
    first: int,
    embedder: str,
    generation: int,
) -> str:
    material = orjson.dumps([str(tenant_id), query, role, first, embedder, generation])
    return PREFIX + hashlib.sha256(material).hexdigest()


async def get(redis: Redis, key: str) -> list[Hit] | None:
    raw = await redis.get(key)
    if raw is None:
        return None
    return [
        Hit(
            id=uuid.UUID(h["id"]),
            name=h["name"],
            role=h["role"],
            summary=h["summary"],
            content=h["content"],
            score=h["score"],
        )
        for h in orjson.loads(raw)
    ]


async def put(redis: Redis, key: str, hits: Sequence[Hit], ttl_s: int = TTL_S) -> None:
    value = orjson.dumps(
        [
            {
                "id": str(h.id),
                "name": h.name,
                "role": h.role,
                "summary": h.summary,
                "content": h.content,
                "score": h.score,
            }
            for h in hits
        ]
    )
    await redis.set(key, value, ex=ttl_s)
