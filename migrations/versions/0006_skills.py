"""Skills: a one-line summary for the manifest, and one name per tenant.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

- `summary` is what an agent's first prompt shows of a skill (two-stage loading,
  domain/skills.py): one line, written by the skill's author. Existing skills get the first
  line of their content, cut at 160 characters.
- A skill is loaded by name during a run (`load_skill <name>`), so a name is unique within
  its tenant, case-insensitively; global skills (tenant_id NULL) form one namespace of their
  own. A tenant's skill may share a global skill's name: the tenant's own is loaded first.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE skills ADD COLUMN summary text NOT NULL DEFAULT ''")
    op.execute(
        "UPDATE skills SET summary = left(btrim(regexp_replace("
        "split_part(btrim(content), E'\\n', 1), '^[#>*\\s-]+', '')), 160)"
    )
    op.execute(
        "CREATE UNIQUE INDEX skills_name_per_tenant ON skills "
        "(coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), lower(name))"
    )


def downgrade() -> None:
    op.execute("DROP INDEX skills_name_per_tenant")
    op.execute("ALTER TABLE skills DROP COLUMN summary")
