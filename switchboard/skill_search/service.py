"""Skill search for one gateway process: keeping its index current, the cache, the search.

PostgreSQL is the source of truth; the index is a copy. qdrant-client's local mode lives
inside one process, so every gateway process holds its own in-memory collections (one per
scope: the global skills and each tenant's, index.py), and the plan for several processes
is:
- at start (`start()`, in the background), a process reads the skills generation from
  Redis, then builds its collections from every row of `skills` (reading the generation
  first means a change that lands during the build is seen again on the next search,
  never missed);
- a write path, after its commit, calls `changed(ids)`: the generation is bumped with the
  changed ids logged (changes.py), and this process catches up at once;
- every search reads the generation (one GET); a process that is behind loads just the
  logged skills from PostgreSQL and re-embeds them (or everything, when the log cannot
  say) before it searches, one catch-up at a time per process;
- the generation is part of the cache key, so a change retires every cached result.
A process therefore answers from the newest committed skills as soon as the bump is in
Redis. With `QDRANT_URL` set the processes share a server's one collection instead; each
still catches up the same way (upserts are idempotent), and the first process to start
fills it.

Workers never search: an agent run's manifest and the skills it loads come from PostgreSQL
through domain/store/skills.py, so a worker builds no index.

Redis down: the generation is unknown, so this process searches the collections it has
and caches nothing until Redis answers again (a breaker skips Redis meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from domain.store.skills import rows_for_index
from switchboard.infra.breaker import RedisBreaker
from switchboard.infra.db import Database, current_counter
from switchboard.settings import Settings
from switchboard.skill_search import cache, changes
from switchboard.skill_search.embeddings import Embedder, embedder_named
from switchboard.skill_search.index import Hit, SkillIndex, qdrant_client

log = logging.getLogger(__name__)
T = TypeVar("T")


class SkillSearch:
    def __init__(
        self, db: Database, redis: Redis, index: SkillIndex, *, cache_ttl_s: int = cache.TTL_S
    ) -> None:
        self.db = db
        self.redis = redis
        self.index = index
        self.cache_ttl_s = cache_ttl_s
        self.generation: int | None = None  # None: the collections are not built yet
        self.breaker = RedisBreaker()
        self._lock = asyncio.Lock()
        self._building: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, db: Database, redis: Redis, embedder: Embedder | None = None
    ) -> SkillSearch:
        """Qdrant where the settings say (QDRANT_URL: a server; else local mode), with the
        embedder they name (SWITCHBOARD_SKILL_EMBEDDING)."""
        client = qdrant_client(settings.qdrant_url, settings.qdrant_api_key)
        embedder = embedder or embedder_named(settings.skill_embedding)
        return cls(db, redis, SkillIndex(client, embedder))

    def start(self) -> None:
        """Start building the collections in the background: the process starts serving at
        once (an unreachable database must not hold up start-up), and a search that comes
        before the build is done waits for it (the lock). A failed build is retried by the
        first search."""
        self._building = asyncio.create_task(self._build_at_start())

    async def _build_at_start(self) -> None:
        try:
            async with self._lock:
                if self.generation is None:
                    await self._rebuild(await self._remote_generation())
        except Exception:
            log.exception("skill index not built at start; the first search builds it")

    async def close(self) -> None:
        if self._building is not None:
            self._building.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._building
        await self.index.close()

    async def search(
        self, tenant_id: uuid.UUID, query: str, role: str | None, first: int
    ) -> list[Hit]:
        generation = await self._remote_generation()
        await self._catch_up(generation)
        key = None
        if generation is not None:
            key = cache.cache_key(
                tenant_id, query, role, first, self.index.embedder.name, generation
            )
            cached = await self._redis(cache.get(self.redis, key), "skill cache read")
            if cached is not None:
                return cached
        hits = await self.index.search(query, tenant_id, role, first)
        if key is not None:
            await self._redis(cache.put(self.redis, key, hits, self.cache_ttl_s), "skill cache")
        return hits

    async def changed(self, ids: Iterable[uuid.UUID] | None) -> None:
        """After a commit that changed `ids` (None: any skills): tell every process, and
        catch up in this one now."""
        generation = await self._redis(changes.bump(self.redis, ids), "skill generation bump")
        await self._catch_up(generation)

    # Keeping current

    async def _remote_generation(self) -> int | None:
        return await self._redis(changes.current(self.redis), "skill generation")

    async def _catch_up(self, generation: int | None) -> None:
        if self.generation is not None and (generation is None or generation == self.generation):
            return
        async with self._lock:  # one catch-up per process; the others wait and find it done
            if self.generation is None:
                await self._rebuild(generation)
                return
            if generation is None or generation == self.generation:
                return
            ids = await self._redis(
                changes.since(self.redis, self.generation, generation), "skill change log"
            )
            if ids is None:
                await self._rebuild(generation)
                return
            async with self.db.connect() as conn:
                rows = await rows_for_index(conn, ids)
            await self.index.upload(rows)
            await self.index.delete(sorted(set(ids) - {row.id for row in rows}))
            self.generation = generation

    async def _rebuild(self, generation: int | None) -> None:
        # Not this request's statements: a rebuild is the process's, whoever triggers it.
        token = current_counter.set(None)
        try:
            async with self.db.connect() as conn:
                rows = await rows_for_index(conn)
        finally:
            current_counter.reset(token)
        await self.index.clear()
        sizes = await self.index.upload(rows)
        self.generation = generation if generation is not None else 0
        log.info(
            "skill index built: %d skills in %d batches (%s, generation %s)",
            len(rows),
            len(sizes),
            self.index.collection,
            self.generation,
        )

    async def _redis(self, call: Coroutine[Any, Any, T], where: str) -> T | None:
        """`call`'s result, or None when Redis fails or the breaker skips it."""
        if not self.breaker.available():
            call.close()
            return None
        try:
            result = await call
        except (RedisError, OSError) as error:
            self.breaker.failed(where, error)
            return None
        self.breaker.succeeded()
        return result
