"""Agents: what a new agent of each role starts with, what each model costs, and the
statuses a person may set."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from domain.enums import AgentRole
from domain.errors import Rejected

DEFAULT_CONCURRENCY = {
    AgentRole.ACTIVITY_PLANNER: 2,
    AgentRole.COPYWRITER: 4,
    AgentRole.SEO_SPECIALIST: 3,
    AgentRole.SOCIAL_MEDIA_MANAGER: 4,
    AgentRole.PAID_ADS_MANAGER: 2,
    AgentRole.DATA_ANALYST: 2,
    AgentRole.CONTENT_RESEARCHER: 8,
}

DEFAULT_MODEL = {
    AgentRole.ACTIVITY_PLANNER: "gpt-4.1",
    AgentRole.COPYWRITER: "claude-sonnet-4",
    AgentRole.SEO_SPECIALIST: "gpt-4.1-mini",
    AgentRole.SOCIAL_MEDIA_MANAGER: "claude-haiku-4",
    AgentRole.PAID_ADS_MANAGER: "gpt-4.1",
    AgentRole.DATA_ANALYST: "gpt-4.1",
    AgentRole.CONTENT_RESEARCHER: "llama-3.1-70b",
}

# US dollars per million (input, output) tokens.
MODEL_PRICES = {
    "gpt-4.1": (Decimal("2.00"), Decimal("8.00")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("1.60")),
    "claude-sonnet-4": (Decimal("3.00"), Decimal("15.00")),
    "claude-haiku-4": (Decimal("0.80"), Decimal("4.00")),
    "llama-3.1-70b": (Decimal("0.60"), Decimal("0.60")),
}

MICRO = Decimal("0.000001")
MILLION = Decimal(1_000_000)


def call_cost(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    input_price, output_price = MODEL_PRICES[model]
    cost = (input_tokens * input_price + output_tokens * output_price) / MILLION
    return cost.quantize(MICRO, rounding=ROUND_HALF_UP)


# What setAgentStatus may do: pause, resume (IDLE) or terminate. RUNNING and ERROR are the
# worker's to set; a TERMINATED agent stays terminated.
SETTABLE_STATUSES = {"PAUSED", "IDLE", "TERMINATED"}
STATUS_TRANSITIONS = {
    "IDLE": {"PAUSED", "TERMINATED"},
    "RUNNING": {"PAUSED", "TERMINATED"},
    "PAUSED": {"IDLE", "TERMINATED"},
    "ERROR": {"IDLE", "PAUSED", "TERMINATED"},
    "TERMINATED": set(),
}


def check_settable(status: str) -> None:
    """Rejected unless setAgentStatus may set `status` at all."""
    if status not in SETTABLE_STATUSES:
        raise Rejected("INVALID", "An agent can be set PAUSED, IDLE or TERMINATED.", "status")


def check_status_move(current: str, status: str) -> None:
    """Rejected unless an agent that is `current` may become `status` (staying is fine)."""
    if status != current and status not in STATUS_TRANSITIONS[current]:
        raise Rejected("INVALID_STATE", f"A {current} agent cannot become {status}.", "status")
