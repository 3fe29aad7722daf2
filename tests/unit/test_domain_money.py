"""Budgets, risk, LLM-call figures, prices and spend windows as plain Python. No server."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from domain import runs
from domain.agents import call_cost
from domain.budgets import BudgetCheck, budget_check
from domain.errors import BadUserInput
from domain.llm_calls import FIGURES, LlmCallFigures, NewLlmCall, figures_of
from domain.spend import month_window, spend_window

D = Decimal


def test_spend_that_reaches_a_cap_exceeds_it_the_narrowest_cap_first() -> None:
    assert budget_check(None, D(5), None, D(50), None, D(500)) == BudgetCheck(None)
    assert budget_check(D(10), D("9.99"), D(100), D(50), D(1000), D(500)).ok
    assert budget_check(D(10), D(10), D(100), D(100), D(1000), D(1000)).exceeded == "activity"
    assert budget_check(D(10), D(1), D(100), D(100), D(1000), D(1000)).exceeded == "campaign"
    assert budget_check(None, D(1), None, D(1), D(0), D(0)).exceeded == "tenant"


@pytest.mark.parametrize(
    ("role", "kind", "risk"),
    [
        ("PAID_ADS_MANAGER", "REPORT", "HIGH"),  # the role's risk wins
        ("COPYWRITER", "EMAIL", "HIGH"),  # the kind's risk wins
        ("COPYWRITER", "BLOG_POST", "MEDIUM"),
        ("SEO_SPECIALIST", "SEO_AUDIT", "LOW"),
        ("DATA_ANALYST", "SOMETHING_NEW", "MEDIUM"),  # an unknown kind: MEDIUM
    ],
)
def test_an_approvals_risk_is_the_higher_of_its_kinds_and_its_roles(
    role: str, kind: str, risk: str
) -> None:
    assert runs.risk_level(role, kind) == risk


def test_prices_are_per_million_tokens_rounded_to_micro_dollars() -> None:
    assert call_cost("gpt-4.1", 1_000_000, 1_000_000) == D("10.000000")
    assert call_cost("claude-haiku-4", 1, 1) == D("0.000005")


def figures(**changes: object) -> NewLlmCall:
    values: dict[str, object] = {
        "provider": "openai",
        "model": "gpt-4.1",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cost_usd": D("0.004800"),
        "latency_ms": 900,
    }
    return NewLlmCall(activity_id=uuid.uuid4(), **{**values, **changes})  # type: ignore[arg-type]


def test_an_llm_calls_figures_follow_their_rules() -> None:
    figures().check()
    for changes, named in [
        ({"provider": " "}, "provider"),
        ({"model": "m" * 101}, "model"),
        ({"input_tokens": -1}, "input_tokens"),
        ({"latency_ms": 2**31}, "latency_ms"),
        ({"cost_usd": D("100000")}, "cost_usd"),
        ({"cost_usd": D("0.0000001")}, "cost_usd"),
    ]:
        with pytest.raises(BadUserInput, match=f"`{named}`"):
            figures(**changes).check()


def test_the_figures_are_defined_once_and_copied_whole() -> None:
    assert FIGURES == (
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "latency_ms",
    )
    call = figures()
    copied = NewLlmCall.of(call.activity_id, call)
    assert copied == call
    assert LlmCallFigures(**figures_of(call)) == LlmCallFigures(**figures_of(copied))


UTC = dt.UTC


def at(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_a_window_is_split_into_raw_edges_whole_hours_and_whole_days() -> None:
    window = spend_window(at(1, 22, 30), at(4, 2, 15))
    assert (window.start, window.hours_start) == (at(1, 22, 30), at(1, 23))  # raw
    assert window.days_start == at(2)  # hourly [23:00, 00:00)
    assert window.days_end == at(4)  # daily 2nd and 3rd
    assert (window.hours_end, window.end) == (at(4, 2), at(4, 2, 15))  # hourly, then raw


def test_a_window_without_a_whole_day_or_hour_needs_fewer_sources() -> None:
    hours = spend_window(at(1, 9, 30), at(1, 12, 10))
    assert hours.days_start == hours.days_end == hours.hours_end == at(1, 12)
    raw = spend_window(at(1, 9, 5), at(1, 9, 55))
    assert raw.hours_start == raw.end == at(1, 9, 55)  # the raw rows answer alone


def test_a_window_may_not_end_before_it_starts_and_the_month_is_utc() -> None:
    with pytest.raises(BadUserInput):
        spend_window(at(2), at(1))
    brazil = dt.timezone(dt.timedelta(hours=-3))  # 02:00 on 1 January in UTC
    month = month_window(dt.datetime(2026, 12, 31, 23, 0, tzinfo=brazil))
    assert (month.start, month.end) == (
        dt.datetime(2027, 1, 1, tzinfo=UTC),
        dt.datetime(2027, 2, 1, tzinfo=UTC),
    )


def test_the_planner_spreads_its_deliverables_until_the_campaign_ends() -> None:
    now = at(1, 12)
    due = runs.plan_due_dates(now, dt.date(2026, 3, 11))
    assert len(due) == len(runs.PLAN) and due[-1] == at(11, 17)
    assert due == sorted(due) and due[0] - now == (at(11, 17) - now) / len(runs.PLAN)
    soon = runs.plan_due_dates(now, dt.date(2026, 3, 2))  # at least a day apart
    assert soon[-1] == now + dt.timedelta(days=len(runs.PLAN))
    assert runs.plan_due_dates(now, None)[-1] == now + dt.timedelta(days=14)


def test_failure_reasons_are_bounded_and_escalations_say_why() -> None:
    assert len(runs.failure_reason("x" * 5000)) == runs.MAX_FAILURE_REASON
    assert "Reason: out of budget" in runs.escalation_instructions("out of budget")
