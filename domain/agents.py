"""Agents: what a new agent of each role starts with, what each model costs, and the
statuses a person may set."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.enums import AgentRole
from domain.errors import Rejected
from domain.events import record_event
from loaders.shapes import AGENT_COLUMNS

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


async def set_agent_status(
    conn: AsyncConnection, tenant_id: uuid.UUID, agent_id: uuid.UUID, status: str
) -> Any:
    """Move the agent to `status` (a row of AGENT_COLUMNS)."""
    if status not in SETTABLE_STATUSES:
        raise Rejected("INVALID", "An agent can be set PAUSED, IDLE or TERMINATED.", "status")
    current = (
        await conn.execute(
            text("SELECT status FROM agents WHERE id = :id AND tenant_id = :tenant_id FOR UPDATE"),
            {"id": agent_id, "tenant_id": tenant_id},
        )
    ).scalar()
    if current is None:
        raise Rejected("NOT_FOUND", "No agent has this ID.", "id")
    if status != current and status not in STATUS_TRANSITIONS[current]:
        raise Rejected("INVALID_STATE", f"A {current} agent cannot become {status}.", "status")
    row = (
        await conn.execute(
            text(f"UPDATE agents t SET status = :status WHERE id = :id RETURNING {AGENT_COLUMNS}"),
            {"status": status, "id": agent_id},
        )
    ).one()
    await record_event(conn, tenant_id, "AGENT_STATUS_CHANGED", agent_id=agent_id)
    return row
