"""Tenant events (an outbox written with each change) and activity revisions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

`tenant_events` is written in the same transaction as the change it describes, so an event
exists only for a committed change; the live-events relay publishes from it in `id` order.
`activities.revision_of` links a revision to the activity whose output it revises.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE tenant_events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants(id),
        type text NOT NULL CHECK (type IN (
            'APPROVAL_CREATED', 'APPROVAL_RESOLVED', 'ACTIVITY_STATUS_CHANGED',
            'AGENT_STATUS_CHANGED', 'CAMPAIGN_UPDATED', 'SPEND_UPDATED', 'ESCALATION_CREATED'
        )),
        approval_id uuid,
        activity_id uuid,
        agent_id uuid,
        campaign_id uuid,
        occurred_at timestamptz NOT NULL DEFAULT now()
    )
    """)
    op.execute("CREATE INDEX tenant_events_tenant ON tenant_events (tenant_id, id)")
    op.execute("ALTER TABLE activities ADD COLUMN revision_of uuid REFERENCES activities(id)")


def downgrade() -> None:
    op.execute("ALTER TABLE activities DROP COLUMN revision_of")
    op.execute("DROP TABLE tenant_events")
