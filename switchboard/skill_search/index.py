"""The Qdrant collections of skill vectors: where Qdrant runs, how the collections are laid
out, how they are uploaded and searched.

- One point per skill: its id is the skill's UUID, its vector the embedding of the skill's
  name, summary and content (`embeddings.skill_text`), its payload what a search answers
  with (`name`, `role`, `summary`, `content`) plus the two filter fields:
  `tenant` (the tenant's UUID, or `global`) and `role` (the role, or absent).
- Where Qdrant runs: qdrant-client's local mode in this process (`:memory:`, the default)
  or, with `QDRANT_URL` set (and `QDRANT_API_KEY` where the server needs one), a Qdrant
  server shared by every process. Collection names start with the embedder's name
  (`skills_lexical…`, `skills_minilm…`), so two embedders never mix vectors in one
  collection. How each process keeps its copy current is in service.py.
- Layout in local mode: one collection per scope, created on demand:
  `skills_<embedder>_global` for the global skills and `skills_<embedder>_t<tenant hex>`
  for each tenant's own. Local mode evaluates a payload filter in Python for every point of
  a collection it searches (about 9 µs a point and condition), so a search must not scan
  every tenant's skills: it scans the global collection and the caller's, nothing else.
  The index remembers which collection holds each skill (`_home`), so a delete finds it.
- Layout with a server: one collection `skills_<embedder>` for every scope, with keyword
  payload indexes on `tenant` and `role`: the server filters through its indexes, not by
  scanning, and a collection per tenant would cost the server memory and segments per
  tenant for nothing (Qdrant's own advice for multitenancy is one collection with a
  tenant payload field).
- A search filters inside Qdrant in both layouts: `tenant` is the caller's tenant or
  `global`, and `role` equals the asked role when one is given. Nothing of another tenant
  can come back, and `limit` applies after the filter, so a filter never leaves a page
  short. In local mode each of the two collections answers its best `limit` and the hits
  are merged by score (highest first, ties by id), then cut to `limit`.
- An upload embeds its skills in batches of 32 and upserts each batch as it is embedded,
  each point into its scope's collection.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from qdrant_client import AsyncQdrantClient, models

from domain.skills import SkillRow
from switchboard.skill_search.embeddings import Embedder, skill_text

UPLOAD_BATCH = 32
GLOBAL = "global"  # the `tenant` payload value of a skill every tenant sees


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result, straight from the point's payload."""

    id: uuid.UUID
    name: str
    role: str | None
    summary: str
    content: str
    score: float


def qdrant_client(url: str | None, api_key: str | None) -> AsyncQdrantClient:
    """A client of the Qdrant server at `url`, or local mode in memory without one."""
    if url:
        return AsyncQdrantClient(url=url, api_key=api_key)
    return AsyncQdrantClient(location=":memory:")


class SkillIndex:
    def __init__(self, client: AsyncQdrantClient, embedder: Embedder) -> None:
        self.client = client
        self.embedder = embedder
        self.local = client._client.__class__.__name__.endswith("Local")
        # The server's one collection; in local mode, the prefix of the per-scope ones.
        self.collection = f"skills_{embedder.name}"
        self._ready: set[str] = set()  # collections known to exist
        self._home: dict[uuid.UUID, str] = {}  # local mode: the collection holding a skill

    def collection_for(self, tenant_id: uuid.UUID | None) -> str:
        """Where a skill of this scope (None: global) lives."""
        if not self.local:
            return self.collection
        if tenant_id is None:
            return f"{self.collection}_{GLOBAL}"
        return f"{self.collection}_t{tenant_id.hex}"

    async def ensure_collection(self, name: str | None = None) -> None:
        """Create `name` (default: the global skills' collection) unless it exists."""
        name = name or self.collection_for(None)
        if name in self._ready:
            return
        if not await self.client.collection_exists(name):
            await self.client.create_collection(
                name,
                vectors_config=models.VectorParams(
                    size=self.embedder.dim, distance=models.Distance.COSINE
                ),
            )
            if not self.local:  # local mode filters by scanning; a server uses these indexes
                for field in ("tenant", "role"):
                    await self.client.create_payload_index(
                        name, field, models.PayloadSchemaType.KEYWORD
                    )
        self._ready.add(name)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.embedder.blocking:
            return await asyncio.to_thread(self.embedder.embed, texts)
        return self.embedder.embed(texts)

    async def upload(self, rows: Sequence[SkillRow]) -> list[int]:
        """Embed `rows` in batches of UPLOAD_BATCH and upsert each batch's points into
        their scopes' collections; returns the batch sizes."""
        sizes = []
        for start in range(0, len(rows), UPLOAD_BATCH):
            batch = rows[start : start + UPLOAD_BATCH]
            vectors = await self.embed([skill_text(r.name, r.summary, r.content) for r in batch])
            by_collection: dict[str, list[models.PointStruct]] = defaultdict(list)
            for row, vector in zip(batch, vectors, strict=True):
                by_collection[self.collection_for(row.tenant_id)].append(
                    models.PointStruct(
                        id=str(row.id), vector=vector.tolist(), payload=_payload(row)
                    )
                )
            for name, points in by_collection.items():
                await self.ensure_collection(name)
                await self.client.upsert(name, points=points, wait=True)
            if self.local:
                for row in batch:
                    home = self.collection_for(row.tenant_id)
                    moved_from = self._home.get(row.id)
                    if moved_from is not None and moved_from != home:  # never, but be sure
                        await self._delete_from(moved_from, [row.id])
                    self._home[row.id] = home
            sizes.append(len(batch))
        return sizes

    async def delete(self, ids: Sequence[uuid.UUID]) -> None:
        if not self.local:
            if ids:
                await self._delete_from(self.collection, ids)
            return
        by_collection: dict[str, list[uuid.UUID]] = defaultdict(list)
        for skill_id in ids:
            home = self._home.pop(skill_id, None)
            if home is not None:  # never uploaded here: nothing to delete
                by_collection[home].append(skill_id)
        for name, members in by_collection.items():
            await self._delete_from(name, members)

    async def _delete_from(self, name: str, ids: Sequence[uuid.UUID]) -> None:
        await self.client.delete(
            name, points_selector=models.PointIdsList(points=[str(i) for i in ids]), wait=True
        )

    async def clear(self) -> None:
        """Drop every collection of this embedder, then create the (empty) global one."""
        response = await self.client.get_collections()
        for description in response.collections:
            if description.name == self.collection or description.name.startswith(
                self.collection + "_"
            ):
                await self.client.delete_collection(description.name)
        self._ready.clear()
        self._home.clear()
        await self.ensure_collection()

    async def search(
        self, query: str, tenant_id: uuid.UUID, role: str | None, limit: int
    ) -> list[Hit]:
        (vector,) = await self.embed([query])
        must: list[models.Condition] = [
            models.FieldCondition(key="tenant", match=models.MatchAny(any=[str(tenant_id), GLOBAL]))
        ]
        if role is not None:
            must.append(models.FieldCondition(key="role", match=models.MatchValue(value=role)))
        query_filter = models.Filter(must=must)
        names = [self.collection_for(None)]
        if self.local:
            names.append(self.collection_for(tenant_id))
        hits: list[Hit] = []
        # One after the other: local mode computes in this thread either way, so running
        # the two concurrently only adds task switches.
        for name in names:
            if self.local and name not in self._ready:  # a tenant with no skills of its own
                continue
            response = await self.client.query_points(
                name,
                query=vector.tolist(),
                query_filter=query_filter,
                limit=limit,
                with_payload=True,
            )
            hits.extend(
                Hit(
                    id=uuid.UUID(str(point.id)),
                    name=point.payload["name"],
                    role=point.payload.get("role"),
                    summary=point.payload["summary"],
                    content=point.payload["content"],
                    score=float(point.score),
                )
                for point in response.points
                if point.payload is not None
            )
        hits.sort(key=lambda hit: (-hit.score, hit.id))
        return hits[:limit]

    async def close(self) -> None:
        await self.client.close()


def _payload(row: SkillRow) -> dict[str, object]:
    payload: dict[str, object] = {
        "tenant": str(row.tenant_id) if row.tenant_id else GLOBAL,
        "name": row.name,
        "summary": row.summary,
        "content": row.content,
    }
    if row.role is not None:
        payload["role"] = row.role
    return payload
