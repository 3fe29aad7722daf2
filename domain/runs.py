"""The run of one activity: start, streamed output, LLM calls, budgets, and its end.

The rules live here; domain/store/runs.py makes the moves, in the caller's transaction
with the tenant events of each change. The job worker (tasks/runner.py) and the agent
runtimes' mutations (reportActivityProgress, recordLlmCall) go through the same functions,
so an activity moves the same way whoever runs it.

Activity states an agent's run moves through:

    QUEUED ──start──▶ RUNNING ──finish──▶ AWAITING_APPROVAL   (a PENDING approval, 48 h)
                         │    └─finish──▶ COMPLETED            (the planner: no approval)
                         ├──fail──────▶ FAILED                 (failureReason, e.g. BUDGET_EXCEEDED)
                         └──escalate──▶ ESCALATED              (a person must look)
    QUEUED / RUNNING ──cancel──▶ CANCELLED                     (its agent was terminated)

A RUNNING activity may be started again: its job is delivered again after its worker died
or lost the job's lease (a Redis outage longer than the lease), and the run starts over
(output cleared; LLM calls already made stay recorded).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from domain.errors import Rejected

APPROVAL_TTL = dt.timedelta(hours=48)
MAX_CHUNK = 64_000
MAX_OUTPUT = 1_000_000
MAX_FAILURE_REASON = 2_000

# Risk of a finished activity's approval: the higher of what its deliverable's kind and its
# agent's role carry. Paid ads and emails reach customers or spend money: HIGH.
KIND_RISK = {
    "AD_SET": "HIGH",
    "EMAIL": "HIGH",
    "BLOG_POST": "MEDIUM",
    "SOCIAL_POST": "MEDIUM",
    "SEO_AUDIT": "LOW",
    "REPORT": "LOW",
}
ROLE_RISK = {
    "PAID_ADS_MANAGER": "HIGH",
    "COPYWRITER": "MEDIUM",
    "SOCIAL_MEDIA_MANAGER": "MEDIUM",
    "ACTIVITY_PLANNER": "LOW",
    "SEO_SPECIALIST": "LOW",
    "DATA_ANALYST": "LOW",
    "CONTENT_RESEARCHER": "LOW",
}
_RISK_ORDER = ["LOW", "MEDIUM", "HIGH"]


def risk_level(role: str, kind: str) -> str:
    return max(KIND_RISK.get(kind, "MEDIUM"), ROLE_RISK.get(role, "LOW"), key=_RISK_ORDER.index)


# What an agent may report about its own activity (reportActivityProgress).
AGENT_TRANSITIONS = {
    "QUEUED": {"RUNNING"},
    "RUNNING": {"RUNNING", "AWAITING_APPROVAL", "FAILED", "ESCALATED"},
}


def check_agent_report(current: str, status: str | None) -> None:
    """Rejected unless an agent may report `status` (None: no status) for its `current`
    activity."""
    if status is not None and status not in AGENT_TRANSITIONS.get(current, ()):
        raise Rejected(
            "INVALID_STATE", f"A {current} activity cannot become {status}.", "input", "status"
        )


# What the planner puts in every campaign: (kind, role, title).
PLAN = [
    ("BLOG_POST", "COPYWRITER", "Launch blog post"),
    ("SOCIAL_POST", "SOCIAL_MEDIA_MANAGER", "Social media posts"),
    ("EMAIL", "COPYWRITER", "Announcement email"),
    ("SEO_AUDIT", "SEO_SPECIALIST", "SEO audit of the landing pages"),
    ("AD_SET", "PAID_ADS_MANAGER", "Paid ads"),
]


@dataclass(frozen=True, slots=True)
class Run:
    """What a run needs to know of its activity, agent, deliverable and campaign."""

    activity_id: uuid.UUID
    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    campaign_id: uuid.UUID
    deliverable_id: uuid.UUID
    priority: int
    instructions: str | None
    role: str
    model: str
    max_turns: int
    agent_status: str
    deliverable_title: str
    deliverable_kind: str
    campaign_name: str
    campaign_goal: str | None
    campaign_ends_on: dt.date | None


def failure_reason(reason: str) -> str:
    """A failure reason as stored: cut to MAX_FAILURE_REASON characters."""
    return reason[:MAX_FAILURE_REASON]


def escalation_instructions(reason: str) -> str:
    """What the person taking over a dead-lettered activity reads."""
    return (
        "A person is needed: this work failed after every retry.\n\n"
        f"Reason: {failure_reason(reason)}"
    )


def plan_due_dates(now: dt.datetime, campaign_ends_on: dt.date | None) -> list[dt.datetime]:
    """When each deliverable of PLAN is due: spread evenly from now to the campaign's end
    (17:00 UTC of its last day; two weeks when it has none), at least a day apart."""
    if campaign_ends_on is not None:
        end = dt.datetime.combine(campaign_ends_on, dt.time(17), tzinfo=dt.UTC)
    else:
        end = now + dt.timedelta(days=14)
    end = max(end, now + dt.timedelta(days=len(PLAN)))
    step = (end - now) / len(PLAN)
    return [now + step * (index + 1) for index in range(len(PLAN))]


def plan_instructions(title: str, campaign_name: str, campaign_goal: str | None) -> str:
    """The instructions of the activity the planner creates for one PLAN entry."""
    return f"{title} for the campaign “{campaign_name}”. Goal: {campaign_goal or '(none given)'}"
