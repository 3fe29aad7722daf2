"""Reading the three budget caps and the spends they limit, in one statement (the rule:
domain/budgets.py)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.budgets import BudgetCheck, budget_check
from domain.spend import month_window

# One statement: the three caps and the three spends they limit.
CHECK_SQL = """
SELECT g.max_cost_usd_per_activity, coalesce(a.cost_usd, 0),
       m.budget_cap_usd, m.spent_usd,
       t.monthly_spend_cap_usd,
       coalesce((SELECT sum(total_usd) FROM llm_spend_daily
                 WHERE tenant_id = :tenant_id AND dimension = 'TENANT'
                   AND day >= :month_start AND day < :month_end), 0)
FROM campaigns m
JOIN tenants t ON t.id = m.tenant_id
JOIN agents g ON g.id = :agent_id AND g.tenant_id = :tenant_id
LEFT JOIN activities a ON a.id = :activity_id AND a.tenant_id = :tenant_id
WHERE m.id = :campaign_id AND m.tenant_id = :tenant_id
"""


async def check_budgets(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    campaign_id: uuid.UUID,
    agent_id: uuid.UUID,
    activity_id: uuid.UUID | None = None,
    now: dt.datetime | None = None,
) -> BudgetCheck:
    """Whether one more LLM call may be made for this work (`activity_id` None: new work)."""
    month = month_window(now or dt.datetime.now(dt.UTC))
    row = (
        await conn.execute(
            text(CHECK_SQL),
            {
                "tenant_id": tenant_id,
                "campaign_id": campaign_id,
                "agent_id": agent_id,
                "activity_id": activity_id,
                "month_start": month.start,
                "month_end": month.end,
            },
        )
    ).one()
    activity_cap, activity_spent, campaign_cap, campaign_spent, tenant_cap, tenant_spent = row
    # Month-to-date from whole days; today's calls are in the daily row already, since a
    # day's rollup row is written with each call.
    return budget_check(
        activity_cap, activity_spent, campaign_cap, campaign_spent, tenant_cap, tenant_spent
    )
