"""The Qdrant collection of skill vectors: what it stores, how it is uploaded and searched.

- One point per skill: its id is the skill's UUID, its vector the embedding of the skill's
  name, summary and content (`embeddings.skill_text`), its payload what a search answers
  with (`name`, `role`, `summary`, `content`) plus the two filter fields:
  `tenant` (the tenant's UUID, or `global`) and `role` (the role, or absent).
- A search filters inside Qdrant: `tenant` is the caller's tenant or `global`, and `role`
  equals the asked role when one is given. Nothing of another tenant can come back, and
  `limit` applies after the filter, so a filter never leaves a page short.
- An upload embeds its skills in batches of 32 and upserts each batch as it is embedded.
- Where Qdrant runs: qdrant-client's local mode in this process (`:memory:`, the default)
  or, with `QDRANT_URL` set (and `QDRANT_API_KEY` where the server needs one), a Qdrant
  server shared by every process. The collection is named after the embedder
  (`skills_lexical`, `skills_minilm`), so two embedders never mix vectors in one collection.
  How each process keeps its copy current is in service.py.
"""

from __future__ import annotations

import asyncio
import os
import uuid
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


def client_from_env() -> AsyncQdrantClient:
    url = os.environ.get("QDRANT_URL", "").strip()
    if url:
        return AsyncQdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY") or None)
    return AsyncQdrantClient(location=":memory:")


class SkillIndex:
    def __init__(self, client: AsyncQdrantClient, embedder: Embedder) -> None:
        self.client = client
        self.embedder = embedder
        self.collection = f"skills_{embedder.name}"
        self.local = client._client.__class__.__name__.endswith("Local")

    async def ensure_collection(self) -> None:
        if await self.client.collection_exists(self.collection):
            return
        await self.client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(
                size=self.embedder.dim, distance=models.Distance.COSINE
            ),
        )
        if not self.local:  # local mode filters by scanning; a server uses these indexes
            for field in ("tenant", "role"):
                await self.client.create_payload_index(
                    self.collection, field, models.PayloadSchemaType.KEYWORD
                )

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.embedder.blocking:
            return await asyncio.to_thread(self.embedder.embed, texts)
        return self.embedder.embed(texts)

    async def upload(self, rows: Sequence[SkillRow]) -> list[int]:
        """Embed and upsert `rows` in batches of UPLOAD_BATCH; returns the batch sizes."""
        sizes = []
        for start in range(0, len(rows), UPLOAD_BATCH):
            batch = rows[start : start + UPLOAD_BATCH]
            vectors = await self.embed([skill_text(r.name, r.summary, r.content) for r in batch])
            await self.client.upsert(
                self.collection,
                points=[
                    models.PointStruct(
                        id=str(row.id), vector=vector.tolist(), payload=_payload(row)
                    )
                    for row, vector in zip(batch, vectors, strict=True)
                ],
                wait=True,
            )
            sizes.append(len(batch))
        return sizes

    async def delete(self, ids: Sequence[uuid.UUID]) -> None:
        if ids:
            await self.client.delete(
                self.collection,
                points_selector=models.PointIdsList(points=[str(i) for i in ids]),
                wait=True,
            )

    async def clear(self) -> None:
        await self.client.delete_collection(self.collection)
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
        response = await self.client.query_points(
            self.collection,
            query=vector.tolist(),
            query_filter=models.Filter(must=must),
            limit=limit,
            with_payload=True,
        )
        return [
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
        ]

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
