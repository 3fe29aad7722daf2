"""pg_stat_statements, where the server allows it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

The extension needs `shared_preload_libraries = 'pg_stat_statements'` (the embedded server
sets it) and the right to create extensions; a server that refuses keeps working without.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    DO $$
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_stat_statements is not available here: %', SQLERRM;
    END
    $$
    """)


def downgrade() -> None:
    op.execute("DROP EXTENSION IF EXISTS pg_stat_statements")
