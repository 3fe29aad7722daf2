"""Recording an LLM call: the raw row and every spend rollup in one statement (see
domain/store/rollups.py), in the caller's transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.llm_calls import NewLlmCall, RecordedCall
from domain.store.rollups import RECORD_CALL_SQL


async def record_llm_call(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    call: NewLlmCall,
    at: dt.datetime | None = None,
) -> RecordedCall | None:
    """Write the call and its rollups in the caller's transaction; None if the activity is
    not one of the tenant's."""
    call.check()
    row = (
        await conn.execute(
            text(RECORD_CALL_SQL),
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                **dataclasses.asdict(call),
                "created_at": at or dt.datetime.now(dt.UTC),
            },
        )
    ).first()
    return RecordedCall(id=row.id, created_at=row.created_at) if row else None
