"""The column lists the write side returns (`RETURNING …`) and the read side maps.

The store owns them; loaders/shapes.py imports them, so a row a write returns can be handed
to the same mapper as a row a read selects. Every list reads its table as alias `t`.
"""

CAMPAIGN_COLUMNS = (
    "t.id, t.tenant_id, t.name, t.goal, t.status, t.budget_cap_usd, t.starts_on, t.ends_on, "
    "t.created_at, t.updated_at, t.spent_usd"
)
DELIVERABLE_COLUMNS = (
    "t.id, t.campaign_id, t.title, t.kind, t.status, t.due_at, t.created_at, t.cost_usd"
)
ACTIVITY_COLUMNS = (
    "t.id, t.deliverable_id, t.agent_id, t.status, t.wake_reason, t.priority, t.instructions, "
    "t.output, t.failure_reason, t.created_at, t.dispatched_at, t.first_token_at, "
    "t.completed_at, t.cost_usd"
)
APPROVAL_COLUMNS = (
    "t.id, t.activity_id, t.status, t.risk_level, t.requested_at, t.expires_at, t.resolved_at, "
    "t.comment, t.resolved_by"
)
AGENT_COLUMNS = (
    "t.id, t.role, t.status, t.model, t.concurrency, t.max_cost_usd_per_activity, "
    "t.max_turns_per_run"
)
