"""The columns the write side returns (`RETURNING …`) and the read side maps, by name.

The store owns them; loaders/shapes.py imports them, so a row a write returns can be handed
to the same mapper as a row a read selects. Each table's columns are named once, as a
tuple (`*_FIELDS`); its select list (`*_COLUMNS`, over alias `t`) is made from that tuple,
and the mappers read each column by its name, so the order of a list does not matter.
"""


def select_list(fields: tuple[str, ...]) -> str:
    """`t.a, t.b, …`: the select list of `fields` over alias `t`."""
    return ", ".join(f"t.{field}" for field in fields)


CAMPAIGN_FIELDS = (
    "id",
    "tenant_id",
    "name",
    "goal",
    "status",
    "budget_cap_usd",
    "starts_on",
    "ends_on",
    "created_at",
    "updated_at",
    "spent_usd",
)
DELIVERABLE_FIELDS = (
    "id",
    "campaign_id",
    "title",
    "kind",
    "status",
    "due_at",
    "created_at",
    "cost_usd",
)
ACTIVITY_FIELDS = (
    "id",
    "deliverable_id",
    "agent_id",
    "status",
    "wake_reason",
    "priority",
    "instructions",
    "output",
    "failure_reason",
    "created_at",
    "dispatched_at",
    "first_token_at",
    "completed_at",
    "cost_usd",
)
APPROVAL_FIELDS = (
    "id",
    "activity_id",
    "status",
    "risk_level",
    "requested_at",
    "expires_at",
    "resolved_at",
    "comment",
    "resolved_by",
)
AGENT_FIELDS = (
    "id",
    "role",
    "status",
    "model",
    "concurrency",
    "max_cost_usd_per_activity",
    "max_turns_per_run",
)

CAMPAIGN_COLUMNS = select_list(CAMPAIGN_FIELDS)
DELIVERABLE_COLUMNS = select_list(DELIVERABLE_FIELDS)
ACTIVITY_COLUMNS = select_list(ACTIVITY_FIELDS)
APPROVAL_COLUMNS = select_list(APPROVAL_FIELDS)
AGENT_COLUMNS = select_list(AGENT_FIELDS)
