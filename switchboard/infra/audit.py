"""The audit log: one row per successful mutation, written off the response's path.

`AuditLog.record` only puts the entry on an in-process queue, so it never delays a
response; a background task writes queued entries in batches (one INSERT per batch). On a
normal shutdown `stop` drains the queue before the process exits, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import text

from switchboard.infra.db import Database

log = logging.getLogger(__name__)

MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class AuditEntry:
    tenant_id: uuid.UUID
    actor_id: uuid.UUID
    actor_kind: str  # USER, AGENT or SYSTEM
    action: str  # the mutation, e.g. "resolveApproval"
    target_type: str
    target_id: uuid.UUID | None
    details: dict[str, Any] | None = None
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


INSERT_SQL = text(
    """INSERT INTO audit_logs
        (tenant_id, actor_id, actor_kind, action, target_type, target_id, details, created_at)
    SELECT * FROM unnest(CAST(:tenant_ids AS uuid[]), CAST(:actor_ids AS uuid[]),
        CAST(:actor_kinds AS text[]), CAST(:actions AS text[]), CAST(:target_types AS text[]),
        CAST(:target_ids AS uuid[]), CAST(:details AS jsonb[]), CAST(:ats AS timestamptz[]))"""
)


_STOP = object()  # queued by `stop`: write what came before it, then end


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def record(self, entry: AuditEntry) -> None:
        self._queue.put_nowait(entry)

    def start(self) -> None:
        self._writer = asyncio.create_task(self._run(), name="audit-log-writer")

    async def stop(self) -> None:
        """Write everything recorded so far, then end the writer (never cancelled mid-batch)."""
        if self._writer is not None:
            self._queue.put_nowait(_STOP)
            await self._writer
            self._writer = None

    async def flush(self) -> None:
        """Wait until every entry recorded so far is written (tests)."""
        await self._queue.join()

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stopping = any(item is _STOP for item in batch)
            entries = [item for item in batch if item is not _STOP]
            await self._write(entries, give_up=stopping)
            for _ in batch:
                self._queue.task_done()
            if stopping and not self._queue.empty():
                stopping = False  # entries behind the stop mark: write them too
                self._queue.put_nowait(_STOP)

    async def _write(self, batch: list[AuditEntry], give_up: bool) -> None:
        """Insert the batch; retried with a pause while running, tried twice at shutdown."""
        attempts = 0
        while batch:
            attempts += 1
            try:
                await self._insert(batch)
                return
            except Exception:
                if give_up and attempts >= 2:
                    log.exception("audit log: %d entries could not be written", len(batch))
                    return
                log.exception("audit log: batch of %d entries failed; retrying", len(batch))
                await asyncio.sleep(min(30.0, 0.5 * 2**attempts))

    async def _insert(self, batch: list[AuditEntry]) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                INSERT_SQL,
                {
                    "tenant_ids": [e.tenant_id for e in batch],
                    "actor_ids": [e.actor_id for e in batch],
                    "actor_kinds": [e.actor_kind for e in batch],
                    "actions": [e.action for e in batch],
                    "target_types": [e.target_type for e in batch],
                    "target_ids": [e.target_id for e in batch],
                    "details": [
                        orjson.dumps(e.details).decode() if e.details else None for e in batch
                    ],
                    "ats": [e.at for e in batch],
                },
            )
