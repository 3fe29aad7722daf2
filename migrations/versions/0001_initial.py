"""The initial data model: tenants, people, agents, the work they do, and its spend.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Conventions:
- every table with tenant data has `tenant_id`, indexed, and every query filters on it;
- money is NUMERIC (exact); time is TIMESTAMPTZ;
- each connection of the API has a keyset index (owner, sort key, id) in its order;
- spend is kept exact in rollups written in the same transaction as the LLM call:
  `llm_spend_hourly` per (tenant, dimension, key, hour), and all-time `cost_usd` / `spent_usd`
  on activities, deliverables and campaigns.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _check(column: str, values: str) -> str:
    quoted = ", ".join(f"'{v}'" for v in values.split())
    return f"CHECK ({column} IN ({quoted}))"


MEMBER_ROLES = "OWNER ADMIN MARKETER VIEWER"
CAMPAIGN_STATUSES = "DRAFT ACTIVE PAUSED COMPLETED ARCHIVED"
DELIVERABLE_KINDS = "BLOG_POST SOCIAL_POST AD_SET SEO_AUDIT EMAIL REPORT"
DELIVERABLE_STATUSES = "PLANNED IN_PROGRESS IN_REVIEW APPROVED PUBLISHED CANCELLED"
ACTIVITY_STATUSES = (
    "QUEUED RUNNING AWAITING_APPROVAL REVISING COMPLETED FAILED ESCALATED CANCELLED"
)
WAKE_REASONS = (
    "CAMPAIGN_SUBMITTED SCHEDULED MANUAL APPROVAL_GRANTED REVISION_REQUESTED RETRY ESCALATION"
)
APPROVAL_STATUSES = "PENDING APPROVED REJECTED REVISION_REQUESTED EXPIRED"
RISK_LEVELS = "LOW MEDIUM HIGH"
AGENT_ROLES = (
    "ACTIVITY_PLANNER COPYWRITER SEO_SPECIALIST SOCIAL_MEDIA_MANAGER PAID_ADS_MANAGER "
    "DATA_ANALYST CONTENT_RESEARCHER"
)
AGENT_STATUSES = "IDLE RUNNING PAUSED ERROR TERMINATED"
SPEND_DIMENSIONS = "TENANT AGENT MODEL CAMPAIGN"


def _execute_each(script: str) -> None:
    """asyncpg prepares each statement, and a prepared statement holds one command."""
    for statement in script.split(";\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _execute_each(f"""
    CREATE TABLE tenants (
        id uuid PRIMARY KEY,
        slug text NOT NULL UNIQUE,
        name text NOT NULL,
        monthly_spend_cap_usd numeric(20, 6),
        created_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE users (
        id uuid PRIMARY KEY,
        email text NOT NULL UNIQUE,
        display_name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE memberships (
        tenant_id uuid NOT NULL REFERENCES tenants(id),
        user_id uuid NOT NULL REFERENCES users(id),
        role text NOT NULL {_check("role", MEMBER_ROLES)},
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, user_id)
    );
    CREATE INDEX memberships_user ON memberships (user_id);

    CREATE TABLE agents (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants(id),
        role text NOT NULL {_check("role", AGENT_ROLES)},
        status text NOT NULL DEFAULT 'IDLE' {_check("status", AGENT_STATUSES)},
        model text NOT NULL,
        concurrency integer NOT NULL CHECK (concurrency > 0),
        max_cost_usd_per_activity numeric(20, 6),
        max_turns_per_run integer NOT NULL DEFAULT 8 CHECK (max_turns_per_run > 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (tenant_id, role)
    );

    CREATE TABLE campaigns (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants(id),
        name text NOT NULL,
        goal text,
        status text NOT NULL DEFAULT 'DRAFT' {_check("status", CAMPAIGN_STATUSES)},
        budget_cap_usd numeric(20, 6),
        starts_on date,
        ends_on date,
        spent_usd numeric(20, 6) NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX campaigns_tenant_keyset ON campaigns (tenant_id, created_at DESC, id DESC);
    CREATE INDEX campaigns_tenant_status_keyset
        ON campaigns (tenant_id, status, created_at DESC, id DESC);

    CREATE TABLE deliverables (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants(id),
        campaign_id uuid NOT NULL REFERENCES campaigns(id),
        title text NOT NULL,
        kind text NOT NULL {_check("kind", DELIVERABLE_KINDS)},
        status text NOT NULL DEFAULT 'PLANNED' {_check("status", DELIVERABLE_STATUSES)},
        due_at timestamptz,
        cost_usd numeric(20, 6) NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX deliverables_tenant ON deliverables (tenant_id);
    CREATE INDEX deliverables_campaign_keyset
        ON deliverables (campaign_id, created_at DESC, id DESC);
    CREATE INDEX deliverables_campaign_status_keyset
        ON deliverables (campaign_id, status, created_at DESC, id DESC);

    CREATE TABLE activities (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants(id),
        campaign_id uuid NOT NULL REFERENCES campaigns(id),
        deliverable_id uuid NOT NULL REFERENCES deliverables(id),
        agent_id uuid NOT NULL REFERENCES agents(id),
        status text NOT NULL DEFAULT 'QUEUED' {_check("status", ACTIVITY_STATUSES)},
        wake_reason text NOT NULL {_check("wake_reason", WAKE_REASONS)},
        priority smallint NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
        instructions text,
        output text,
        failure_reason text,
        cost_usd numeric(20, 6) NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        dispatched_at timestamptz,
        first_token_at timestamptz,
        completed_at timestamptz
    );
    CREATE INDEX activities_tenant_status ON activities (tenant_id, status);
    CREATE INDEX activities_tenant_keyset ON activities (tenant_id, created_at DESC, id DESC);
    CREATE INDEX activities_deliverable_keyset
        ON activities (deliverable_id, created_at DESC, id DESC);
    CREATE INDEX activities_agent_keyset ON activities (agent_id, created_at DESC, id DESC);
    CREATE INDEX activities_agent_status_keyset
        ON activities (agent_id, status, created_at DESC, id DESC);

    CREATE TABLE approvals (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants(id),
        campaign_id uuid NOT NULL REFERENCES campaigns(id),
        activity_id uuid NOT NULL UNIQUE REFERENCES activities(id),
        status text NOT NULL DEFAULT 'PENDING' {_check("status", APPROVAL_STATUSES)},
        risk_level text NOT NULL {_check("risk_level", RISK_LEVELS)},
        requested_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        resolved_at timestamptz,
        resolved_by uuid REFERENCES users(id),
        comment text
    );
    CREATE INDEX approvals_tenant_status ON approvals (tenant_id, status);
    -- The approval queue, soonest expiry first; the expiry job scans the same index.
    CREATE INDEX approvals_pending_by_expiry ON approvals (tenant_id, expires_at, id)
        WHERE status = 'PENDING';
    CREATE INDEX approvals_pending_by_risk ON approvals (tenant_id, risk_level, expires_at, id)
        WHERE status = 'PENDING';
    CREATE INDEX approvals_campaign_pending_keyset ON approvals (campaign_id, expires_at, id)
        WHERE status = 'PENDING';

    CREATE TABLE llm_calls (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants(id),
        activity_id uuid NOT NULL REFERENCES activities(id),
        agent_id uuid NOT NULL REFERENCES agents(id),
        campaign_id uuid NOT NULL REFERENCES campaigns(id),
        provider text NOT NULL,
        model text NOT NULL,
        input_tokens integer NOT NULL CHECK (input_tokens >= 0),
        output_tokens integer NOT NULL CHECK (output_tokens >= 0),
        cost_usd numeric(20, 6) NOT NULL CHECK (cost_usd >= 0),
        latency_ms integer NOT NULL CHECK (latency_ms >= 0),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX llm_calls_tenant_created ON llm_calls (tenant_id, created_at DESC);
    CREATE INDEX llm_calls_activity_keyset ON llm_calls (activity_id, created_at DESC, id DESC);

    -- Exact spend per hour, by dimension: TENANT (key ''), AGENT and CAMPAIGN (key: uuid text),
    -- MODEL (key: the model's name). Written in the same transaction as each LLM call.
    CREATE TABLE llm_spend_hourly (
        tenant_id uuid NOT NULL REFERENCES tenants(id),
        dimension text NOT NULL {_check("dimension", SPEND_DIMENSIONS)},
        key text NOT NULL,
        hour timestamptz NOT NULL,
        total_usd numeric(20, 6) NOT NULL,
        input_tokens bigint NOT NULL,
        output_tokens bigint NOT NULL,
        call_count bigint NOT NULL,
        PRIMARY KEY (tenant_id, dimension, key, hour)
    );
    CREATE INDEX llm_spend_hourly_by_hour ON llm_spend_hourly (tenant_id, dimension, hour);

    CREATE TABLE skills (
        id uuid PRIMARY KEY,
        tenant_id uuid REFERENCES tenants(id),  -- NULL: a global skill, visible to every tenant
        name text NOT NULL,
        role text {_check("role", AGENT_ROLES)},
        content text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX skills_tenant ON skills (tenant_id);

    -- A user's own settings (theme, default filters), the same in every tenant they belong to.
    CREATE TABLE preferences (
        user_id uuid NOT NULL REFERENCES users(id),
        key text NOT NULL,
        value jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, key)
    );

    CREATE TABLE audit_logs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants(id),
        actor_id uuid NOT NULL,
        actor_kind text NOT NULL CHECK (actor_kind IN ('USER', 'AGENT', 'SYSTEM')),
        action text NOT NULL,
        target_type text NOT NULL,
        target_id uuid,
        details jsonb,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX audit_logs_tenant_created ON audit_logs (tenant_id, created_at DESC);
    """)


def downgrade() -> None:
    _execute_each("""
    DROP TABLE audit_logs, preferences, skills, llm_spend_hourly, llm_calls, approvals,
        activities, deliverables, campaigns, agents, memberships, users, tenants;
    """)
