"""Daily spend rollup: long windows read a row per day instead of 24.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

`llm_spend_daily` mirrors `llm_spend_hourly` per UTC day; it is filled from the hourly rows
that exist and kept exact by the same write as the hourly one (domain/rollups.py).
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE llm_spend_daily (
        tenant_id uuid NOT NULL REFERENCES tenants(id),
        dimension text NOT NULL
            CHECK (dimension IN ('TENANT', 'AGENT', 'MODEL', 'CAMPAIGN')),
        key text NOT NULL,
        day timestamptz NOT NULL,
        total_usd numeric(20, 6) NOT NULL,
        input_tokens bigint NOT NULL,
        output_tokens bigint NOT NULL,
        call_count bigint NOT NULL,
        PRIMARY KEY (tenant_id, dimension, key, day)
    )
    """)
    op.execute("CREATE INDEX llm_spend_daily_by_day ON llm_spend_daily (tenant_id, dimension, day)")
    op.execute("""
    INSERT INTO llm_spend_daily
        (tenant_id, dimension, key, day, total_usd, input_tokens, output_tokens, call_count)
    SELECT tenant_id, dimension, key, date_trunc('day', hour, 'UTC'), sum(total_usd),
           sum(input_tokens), sum(output_tokens), sum(call_count)
    FROM llm_spend_hourly
    GROUP BY 1, 2, 3, 4
    """)


def downgrade() -> None:
    op.execute("DROP TABLE llm_spend_daily")
