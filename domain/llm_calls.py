"""Recording an LLM call: the rules its figures must follow, and the one write that keeps
every spend rollup exact (see domain/rollups.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import BadUserInput
from domain.rollups import RECORD_CALL_SQL

MAX_NAME = 100
MAX_COST = Decimal("100000")


@dataclass(frozen=True, slots=True)
class NewLlmCall:
    activity_id: uuid.UUID
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms: int

    def check(self) -> None:
        """BadUserInput naming the first field that breaks a rule."""
        for name in ("provider", "model"):
            value = getattr(self, name)
            if not value.strip() or len(value) > MAX_NAME:
                raise BadUserInput(f"`{name}` must hold 1 to {MAX_NAME} characters.")
        for name in ("input_tokens", "output_tokens", "latency_ms"):
            if not 0 <= getattr(self, name) < 2**31:
                raise BadUserInput(f"`{name}` must be a non-negative 32-bit integer.")
        if not Decimal(0) <= self.cost_usd < MAX_COST:
            raise BadUserInput(f"`cost_usd` must be between 0 and {MAX_COST}.")
        if self.cost_usd != self.cost_usd.quantize(Decimal("0.000001")):
            raise BadUserInput("`cost_usd` has at most 6 decimal places.")


@dataclass(frozen=True, slots=True)
class RecordedCall:
    id: uuid.UUID
    created_at: dt.datetime


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
                "activity_id": call.activity_id,
                "provider": call.provider,
                "model": call.model,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
                "cost_usd": call.cost_usd,
                "latency_ms": call.latency_ms,
                "created_at": at or dt.datetime.now(dt.UTC),
            },
        )
    ).first()
    return RecordedCall(id=row[0], created_at=row[1]) if row else None
