"""The domain's state machines as plain Python: campaign status moves, approval decisions,
agent statuses and what an agent may report of its activity. No server: milliseconds."""

from __future__ import annotations

import itertools
import uuid

import pytest

from domain import agents, approvals, campaigns, runs, work
from domain.errors import Rejected

CAMPAIGN_STATUSES = ["DRAFT", "ACTIVE", "PAUSED", "COMPLETED", "ARCHIVED"]
CAMPAIGN_MOVES = {
    ("DRAFT", "ARCHIVED"),
    ("ACTIVE", "PAUSED"),
    ("PAUSED", "ACTIVE"),
    ("ACTIVE", "COMPLETED"),
    ("PAUSED", "COMPLETED"),
    ("ACTIVE", "ARCHIVED"),
    ("PAUSED", "ARCHIVED"),
    ("COMPLETED", "ARCHIVED"),
}


@pytest.mark.parametrize(("status", "new"), list(itertools.product(CAMPAIGN_STATUSES, repeat=2)))
def test_a_campaign_moves_only_along_the_documented_arrows(status: str, new: str) -> None:
    if status == new or (status, new) in CAMPAIGN_MOVES:
        campaigns.check_status_move(status, new)
        return
    with pytest.raises(Rejected) as refused:
        campaigns.check_status_move(status, new)
    assert refused.value.code == "INVALID_STATE"
    assert refused.value.field == ["input", "status"]


def test_a_draft_is_started_by_submitting_it_not_by_an_update() -> None:
    with pytest.raises(Rejected, match="Submit it to start it"):
        campaigns.check_status_move("DRAFT", "ACTIVE")
    campaigns.check_status_move("ARCHIVED", None)  # no status given: no move


def test_campaign_fields_are_checked_one_rule_at_a_time() -> None:
    campaigns.check_fields({"name": "Autumn", "budget_cap_usd": None, "goal": None})
    for fields, field in [
        ({"name": None}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"goal": "x" * 5_001}, "goal"),
        ({"budget_cap_usd": campaigns.Decimal("-1")}, "budgetCapUsd"),
        ({"budget_cap_usd": campaigns.Decimal("0.0000001")}, "budgetCapUsd"),
        ({"budget_cap_usd": campaigns.MAX_BUDGET + 1}, "budgetCapUsd"),
    ]:
        with pytest.raises(Rejected) as refused:
            campaigns.check_fields(fields)
        assert (refused.value.code, refused.value.field) == ("INVALID", ["input", field])


def test_a_campaign_may_not_end_before_it_starts() -> None:
    day = campaigns.dt.date(2026, 3, 1)
    campaigns.check_dates(day, day)
    campaigns.check_dates(None, day)
    with pytest.raises(Rejected, match="endsOn"):
        campaigns.check_dates(day, day - campaigns.dt.timedelta(days=1))


@pytest.mark.parametrize(
    ("decision", "statuses"),
    [
        ("APPROVE", ("APPROVED", "COMPLETED", "APPROVED")),
        ("REJECT", ("REJECTED", "CANCELLED", "CANCELLED")),
        ("REQUEST_REVISION", ("REVISION_REQUESTED", "REVISING", "IN_PROGRESS")),
    ],
)
def test_each_decision_sets_the_approval_activity_and_deliverable(
    decision: str, statuses: tuple[str, str, str]
) -> None:
    assert approvals.decide(decision, "Shorter, please.") == statuses


def test_a_revision_says_what_to_revise_and_a_comment_has_a_limit() -> None:
    for comment in (None, "", "  \n"):
        with pytest.raises(Rejected, match="what to revise"):
            approvals.decide("REQUEST_REVISION", comment)
    assert approvals.decide("APPROVE", None)[0] == "APPROVED"
    with pytest.raises(Rejected, match="at most 5000"):
        approvals.decide("APPROVE", "x" * (approvals.MAX_COMMENT + 1))


def test_a_revision_carries_only_the_comment_and_the_previous_output() -> None:
    text = approvals.revision_instructions("Add prices.", "Our boots are great.")
    assert "Add prices." in text and "Our boots are great." in text
    assert "(none)" in approvals.revision_instructions("Add prices.", None)


@pytest.mark.parametrize(
    ("current", "status", "allowed"),
    [
        ("IDLE", "PAUSED", True),
        ("RUNNING", "TERMINATED", True),
        ("PAUSED", "IDLE", True),
        ("ERROR", "IDLE", True),
        ("PAUSED", "PAUSED", True),  # setting what it is changes nothing
        ("IDLE", "IDLE", True),
        ("TERMINATED", "IDLE", False),  # a terminated agent stays terminated
        ("TERMINATED", "PAUSED", False),
        ("IDLE", "RUNNING", False),  # the worker's to set
    ],
)
def test_the_statuses_a_person_may_give_an_agent(current: str, status: str, allowed: bool) -> None:
    def check() -> None:
        agents.check_settable(status)
        agents.check_status_move(current, status)

    if allowed:
        check()
    else:
        with pytest.raises(Rejected):
            check()


@pytest.mark.parametrize(
    ("current", "status", "allowed"),
    [
        ("QUEUED", "RUNNING", True),
        ("RUNNING", "RUNNING", True),
        ("RUNNING", "AWAITING_APPROVAL", True),
        ("RUNNING", "FAILED", True),
        ("RUNNING", "ESCALATED", True),
        ("RUNNING", None, True),  # a chunk only
        ("QUEUED", "AWAITING_APPROVAL", False),
        ("AWAITING_APPROVAL", "RUNNING", False),
        ("COMPLETED", "FAILED", False),
        ("CANCELLED", "RUNNING", False),
    ],
)
def test_what_an_agent_may_report_of_its_activity(
    current: str, status: str | None, allowed: bool
) -> None:
    if allowed:
        runs.check_agent_report(current, status)
    else:
        with pytest.raises(Rejected) as refused:
            runs.check_agent_report(current, status)
        assert refused.value.code == "INVALID_STATE"


def test_work_goes_only_to_open_deliverables_of_open_campaigns_and_working_agents() -> None:
    agent = uuid.uuid4()
    work.check_takes_work("PLANNED", "DRAFT", agent, "PAUSED")
    work.check_takes_work("IN_REVIEW", "ACTIVE", agent, "IDLE")
    for args, code, field in [
        (("APPROVED", "ACTIVE", agent, "IDLE"), "INVALID_STATE", "deliverableId"),
        (("PLANNED", "COMPLETED", agent, "IDLE"), "INVALID_STATE", "deliverableId"),
        (("PLANNED", "ACTIVE", None, None), "NOT_FOUND", "role"),
        (("PLANNED", "ACTIVE", agent, "TERMINATED"), "INVALID_STATE", "role"),
    ]:
        with pytest.raises(Rejected) as refused:
            work.check_takes_work(*args)
        assert (refused.value.code, refused.value.field) == (code, ["input", field])
    work.check_campaign_open("PAUSED")
    with pytest.raises(Rejected, match="ARCHIVED campaign takes no new deliverables"):
        work.check_campaign_open("ARCHIVED")


def test_new_work_has_a_title_a_priority_and_bounded_instructions() -> None:
    work.check_title("Launch post")
    work.check_priority(1)
    work.check_priority(10)
    work.check_instructions(None)
    for bad in (
        lambda: work.check_title(" "),
        lambda: work.check_title("x" * 301),
        lambda: work.check_priority(0),
        lambda: work.check_priority(11),
        lambda: work.check_instructions("x" * 20_001),
    ):
        with pytest.raises(Rejected):
            bad()
