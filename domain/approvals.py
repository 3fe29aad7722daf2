"""Resolving approvals: only a PENDING approval can be resolved, and only once.

domain/store/approvals.py makes the decision one conditional UPDATE (`… WHERE status =
'PENDING'`), so of two resolves arriving at the same moment exactly one succeeds; the other
finds the approval resolved and gets INVALID_STATE. What follows each decision:
- APPROVE: the activity COMPLETED, the deliverable APPROVED;
- REJECT: the activity and the deliverable CANCELLED;
- REQUEST_REVISION: the activity REVISING, and a new activity for the same agent with wake
  reason REVISION_REQUESTED and priority 1, carrying only the comment and the previous
  output (not the whole history). The caller enqueues its job after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.errors import Rejected

MAX_COMMENT = 5_000

DECISIONS = {
    # decision: (approval status, activity status, deliverable status)
    "APPROVE": ("APPROVED", "COMPLETED", "APPROVED"),
    "REJECT": ("REJECTED", "CANCELLED", "CANCELLED"),
    "REQUEST_REVISION": ("REVISION_REQUESTED", "REVISING", "IN_PROGRESS"),
}


@dataclass(frozen=True)
class Resolution:
    approval: Any  # its row of APPROVAL_COLUMNS (and `campaign_id`), by name
    revision: Any | None  # the new activity's row (as create_activity's), for REQUEST_REVISION


def revision_instructions(comment: str, previous_output: str | None) -> str:
    return (
        "Revise your previous output as the reviewer asks.\n\n"
        f"Reviewer's comment:\n{comment}\n\n"
        f"Previous output:\n{previous_output or '(none)'}"
    )


def decide(decision: str, comment: str | None) -> tuple[str, str, str]:
    """The statuses a decision sets (approval, activity, deliverable), or Rejected for a
    comment that breaks a rule (too long; missing for REQUEST_REVISION)."""
    if comment is not None and len(comment) > MAX_COMMENT:
        raise Rejected(
            "INVALID", f"A comment holds at most {MAX_COMMENT} characters.", "input", "comment"
        )
    if decision == "REQUEST_REVISION" and not (comment and comment.strip()):
        raise Rejected("INVALID", "Say what to revise in `comment`.", "input", "comment")
    return DECISIONS[decision]
