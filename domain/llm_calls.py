"""An LLM call's figures: defined once here, the rules they must follow, and the call as it
is recorded (the write that keeps every spend rollup exact: domain/store/llm_calls.py).

`LlmCallFigures` is the one list of what a call reports. The agent runtimes' turn results
(tasks/runtimes.py), the recordLlmCall input and the LlmCall type (schema/) extend it, and
`figures_of` copies the figures from any of them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.errors import BadUserInput

MAX_NAME = 100
MAX_COST = Decimal("100000")


# Neither frozen nor slotted: Strawberry builds the schema's input and object types as
# subclasses, which may not be frozen, and reads slots as default values.
@dataclass
class LlmCallFigures:
    """What one LLM call reports: who answered, and what it took and cost."""

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


FIGURES = tuple(field.name for field in dataclasses.fields(LlmCallFigures))


def figures_of(source: Any) -> dict[str, Any]:
    """The figures of anything that carries them (a turn result, the mutation's input), as
    keyword arguments for another carrier."""
    return {name: getattr(source, name) for name in FIGURES}


@dataclass(slots=True)
class NewLlmCall(LlmCallFigures):
    """A call to record for one activity."""

    activity_id: uuid.UUID

    @classmethod
    def of(cls, activity_id: uuid.UUID, source: Any) -> NewLlmCall:
        return cls(activity_id=activity_id, **figures_of(source))


@dataclass(frozen=True, slots=True)
class RecordedCall:
    id: uuid.UUID
    created_at: dt.datetime
