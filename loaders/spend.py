"""Spend totals and reports from the hourly rollup, plus raw rows for the window's edges.

See domain/spend.py for how a window splits. Totals for many owners of one dimension and
window (every campaign of a page, say) are one statement.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from domain.errors import BadUserInput
from domain.ids import to_global_id
from domain.spend import SpendWindow, role_label, spend_window
from schema import types as t
from switchboard.infra.db import Database

SpendKey = tuple[str, str, Any, Any]  # (dimension, key, from, to)

# How a raw llm_calls row (alias c) names its key in each rollup dimension.
RAW_KEY = {
    "TENANT": "''",
    "AGENT": "c.agent_id::text",
    "CAMPAIGN": "c.campaign_id::text",
    "MODEL": "c.model",
}

ZERO = Decimal("0.000000")

# The sums of a group of `_union_sql` rows (alias s), named as SpendSummary and SpendBucket
# read them.
TOTALS = (
    "sum(s.total_usd) AS total_usd, sum(s.input_tokens) AS input_tokens, "
    "sum(s.output_tokens) AS output_tokens, sum(s.call_count) AS call_count"
)


def _union_sql(dimension: str, key_filter: bool) -> str:
    """Daily rollup, hourly rollup and raw edge rows, as rows of (key, at, usd, input, output,
    calls); see domain/spend.py for which part of the window each source covers."""
    rollup_keys = "AND r.key = ANY(:keys)" if key_filter else ""
    raw_keys = f"AND {RAW_KEY[dimension]} = ANY(:keys)" if key_filter else ""
    return f"""
        SELECT r.key, r.day AS at, r.total_usd, r.input_tokens, r.output_tokens, r.call_count
        FROM llm_spend_daily r
        WHERE r.tenant_id = :tenant_id AND r.dimension = '{dimension}' {rollup_keys}
          AND r.day >= :days_start AND r.day < :days_end
        UNION ALL
        SELECT r.key, r.hour, r.total_usd, r.input_tokens, r.output_tokens, r.call_count
        FROM llm_spend_hourly r
        WHERE r.tenant_id = :tenant_id AND r.dimension = '{dimension}' {rollup_keys}
          AND ((r.hour >= :hours_start AND r.hour < :days_start)
            OR (r.hour >= :days_end AND r.hour < :hours_end))
        UNION ALL
        SELECT {RAW_KEY[dimension]}, c.created_at, c.cost_usd, c.input_tokens, c.output_tokens, 1
        FROM llm_calls c
        WHERE c.tenant_id = :tenant_id {raw_keys}
          AND ((c.created_at >= :start AND c.created_at < :hours_start)
            OR (c.created_at >= :hours_end AND c.created_at < :end))
    """


def _window_params(tenant_id: uuid.UUID, window: SpendWindow) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "start": window.start,
        "end": window.end,
        "hours_start": window.hours_start,
        "days_start": window.days_start,
        "days_end": window.days_end,
        "hours_end": window.hours_end,
    }


async def load_spend(
    db: Database, tenant_id: uuid.UUID, keys: Sequence[SpendKey]
) -> list[t.SpendSummary]:
    groups: dict[tuple[str, Any, Any], list[str]] = defaultdict(list)
    for dimension, key, start, end in keys:
        groups[(dimension, start, end)].append(key)
    totals: dict[SpendKey, t.SpendSummary] = {}
    for (dimension, start, end), group_keys in groups.items():
        window = spend_window(start, end)
        sql = f"""
            SELECT s.key, {TOTALS}
            FROM ({_union_sql(dimension, key_filter=True)}) s GROUP BY s.key
        """
        params = _window_params(tenant_id, window) | {"keys": list(dict.fromkeys(group_keys))}
        found = {row["key"]: row for row in await db.fetch(sql, params)}
        for key in group_keys:
            row = found.get(key)
            totals[(dimension, key, start, end)] = (
                t.SpendSummary(
                    total_usd=row["total_usd"],
                    input_tokens=int(row["input_tokens"]),
                    output_tokens=int(row["output_tokens"]),
                    call_count=_as_int(row["call_count"]),
                )
                if row
                else t.SpendSummary(total_usd=ZERO, input_tokens=0, output_tokens=0, call_count=0)
            )
    return [totals[key] for key in keys]


REPORT_LABELS = {
    "AGENT": ("LEFT JOIN agents a ON a.tenant_id = :tenant_id AND a.id = r.key::uuid", "a.role"),
    "CAMPAIGN": (
        "LEFT JOIN campaigns m ON m.tenant_id = :tenant_id AND m.id = r.key::uuid",
        "m.name",
    ),
    "MODEL": ("", "r.key"),
}


async def load_spend_reports(
    db: Database, tenant_id: uuid.UUID, keys: Sequence[tuple[str, Any, Any]]
) -> list[list[t.SpendBucket]]:
    return list(
        await asyncio.gather(
            *(_report(db, tenant_id, group_by, start, end) for group_by, start, end in keys)
        )
    )


async def _report(
    db: Database, tenant_id: uuid.UUID, group_by: str, start: Any, end: Any
) -> list[t.SpendBucket]:
    window = spend_window(start, end)
    params = _window_params(tenant_id, window)
    if group_by == "DAY":
        sql = f"""
            SELECT to_char(date_trunc('day', s.at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day,
                   {TOTALS}
            FROM ({_union_sql("TENANT", key_filter=False)}) s
            GROUP BY day ORDER BY day
        """
        return [_bucket(row["day"], row["day"], row) for row in await db.fetch(sql, params)]
    join, label = REPORT_LABELS[group_by]
    sql = f"""
        SELECT r.key, {label} AS label, r.total_usd, r.input_tokens, r.output_tokens,
               r.call_count FROM (
            SELECT s.key, {TOTALS}
            FROM ({_union_sql(group_by, key_filter=False)}) s GROUP BY s.key
        ) r {join}
        ORDER BY r.total_usd DESC, r.key
    """
    buckets = []
    for row in await db.fetch(sql, params):
        key, label = row["key"], row["label"]
        if group_by == "AGENT":
            buckets.append(_bucket(to_global_id("Agent", uuid.UUID(key)), role_label(label), row))
        elif group_by == "CAMPAIGN":
            buckets.append(_bucket(to_global_id("Campaign", uuid.UUID(key)), label, row))
        else:
            buckets.append(_bucket(key, label, row))
    return buckets


def _bucket(key: str, label: str, row: Any) -> t.SpendBucket:
    """A bucket from a row of TOTALS."""
    return t.SpendBucket(
        key=key,
        label=label,
        total_usd=row["total_usd"],
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        call_count=_as_int(row["call_count"]),
    )


# Token sums are BigInt; the contract keeps call counts a GraphQL Int, which is 32-bit, and a
# count beyond it cannot be represented. Say so plainly instead of failing in serialisation.
MAX_INT = 2**31 - 1


def _as_int(value: int) -> int:
    if value > MAX_INT:
        raise BadUserInput(
            "This window's call count exceeds what the API's Int can carry "
            "(2,147,483,647); ask for a shorter window."
        )
    return int(value)
