"""Budget caps, checked before every dispatch and before every LLM turn.

Three caps, each optional: the agent's `max_cost_usd_per_activity` (against the activity's
spend so far), the campaign's `budget_cap_usd` (all-time spend) and the tenant's
`monthly_spend_cap_usd` (spend in the current UTC month, from the rollups). Spend that has
reached a cap exceeds it: no more may be spent. domain/store/budgets.py reads the caps and
spends in one statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

BUDGET_EXCEEDED = "BUDGET_EXCEEDED"


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    exceeded: str | None  # which cap: "activity", "campaign" or "tenant"; None when within

    @property
    def ok(self) -> bool:
        return self.exceeded is None


def budget_check(
    activity_cap: Decimal | None,
    activity_spent: Decimal,
    campaign_cap: Decimal | None,
    campaign_spent: Decimal,
    tenant_cap: Decimal | None,
    tenant_spent: Decimal,
) -> BudgetCheck:
    """Which cap, if any, the spends have reached (the activity's first, then the
    campaign's, then the tenant's month)."""
    if _reached(activity_cap, activity_spent):
        return BudgetCheck("activity")
    if _reached(campaign_cap, campaign_spent):
        return BudgetCheck("campaign")
    if _reached(tenant_cap, tenant_spent):
        return BudgetCheck("tenant")
    return BudgetCheck(None)


def _reached(cap: Decimal | None, spent: Decimal) -> bool:
    return cap is not None and spent >= cap
