"""Spend rollups: kept exact alongside the raw LLM calls.

`llm_spend_hourly` and `llm_spend_daily` hold per UTC hour and per UTC day the spend of
each tenant (dimension TENANT), agent, model and campaign; `cost_usd` on activities and
deliverables and `spent_usd` on campaigns hold all-time spend. `REBUILD_SQL` recomputes
all of them for one tenant from the raw rows (after a bulk load); each recorded call
updates them in its own transaction.
"""

# The rows of each rollup a call (alias `c`) adds to: its tenant, agent, model and campaign.
DIMENSIONS = """CROSS JOIN LATERAL (VALUES
        ('TENANT', ''), ('AGENT', c.agent_id::text), ('MODEL', c.model),
        ('CAMPAIGN', c.campaign_id::text)
    ) AS d(dimension, key)"""

REBUILD_SQL = [
    # Two rebuilds of one tenant at once would collide on the rows they insert: queue them.
    "SELECT pg_advisory_xact_lock("
    "hashtextextended('rebuild-rollups:' || CAST(:tenant_id AS uuid)::text, 0))",
    # After a bulk load the planner knows nothing of the new rows; without statistics it
    # may join a million calls to their activities row by row.
    "ANALYZE llm_calls, activities, deliverables, campaigns",
    "DELETE FROM llm_spend_hourly WHERE tenant_id = :tenant_id",
    "DELETE FROM llm_spend_daily WHERE tenant_id = :tenant_id",
    f"""
    INSERT INTO llm_spend_hourly
        (tenant_id, dimension, key, hour, total_usd, input_tokens, output_tokens, call_count)
    SELECT c.tenant_id, d.dimension, d.key, date_trunc('hour', c.created_at, 'UTC'),
           sum(c.cost_usd), sum(c.input_tokens), sum(c.output_tokens), count(*)
    FROM llm_calls c
    {DIMENSIONS}
    WHERE c.tenant_id = :tenant_id
    GROUP BY 1, 2, 3, 4
    """,
    """
    INSERT INTO llm_spend_daily
        (tenant_id, dimension, key, day, total_usd, input_tokens, output_tokens, call_count)
    SELECT tenant_id, dimension, key, date_trunc('day', hour, 'UTC'), sum(total_usd),
           sum(input_tokens), sum(output_tokens), sum(call_count)
    FROM llm_spend_hourly
    WHERE tenant_id = :tenant_id
    GROUP BY 1, 2, 3, 4
    """,
    """
    UPDATE activities a SET cost_usd = s.total
    FROM (SELECT activity_id, sum(cost_usd) AS total FROM llm_calls
          WHERE tenant_id = :tenant_id GROUP BY activity_id) s
    WHERE a.tenant_id = :tenant_id AND a.id = s.activity_id
    """,
    """
    UPDATE deliverables d SET cost_usd = s.total
    FROM (SELECT deliverable_id, sum(cost_usd) AS total FROM activities
          WHERE tenant_id = :tenant_id GROUP BY deliverable_id) s
    WHERE d.tenant_id = :tenant_id AND d.id = s.deliverable_id
    """,
    """
    UPDATE campaigns m SET spent_usd = s.total
    FROM (SELECT campaign_id, sum(cost_usd) AS total FROM llm_calls
          WHERE tenant_id = :tenant_id GROUP BY campaign_id) s
    WHERE m.tenant_id = :tenant_id AND m.id = s.campaign_id
    """,
]

# One LLM call, recorded with every rollup in one statement (so in one transaction): the
# raw row, its four hourly and four daily rollup rows, and the all-time cost of its
# activity, deliverable and campaign. Rows are locked in the same order by every call, so
# concurrent calls queue on the rows they share instead of deadlocking. Returns no row when
# the activity is not the tenant's.
RECORD_CALL_TEMPLATE = """
WITH call AS (
    INSERT INTO llm_calls (id, tenant_id, activity_id, agent_id, campaign_id, provider, model,
                           input_tokens, output_tokens, cost_usd, latency_ms, created_at)
    SELECT :id, a.tenant_id, a.id, a.agent_id, a.campaign_id, :provider, :model,
           :input_tokens, :output_tokens, :cost_usd, :latency_ms, :created_at
    FROM activities a
    WHERE a.id = :activity_id AND a.tenant_id = :tenant_id
    RETURNING id, tenant_id, activity_id, agent_id, campaign_id, model, input_tokens,
              output_tokens, cost_usd, created_at
), hourly AS ({HOURLY}
), daily AS ({DAILY}
), activity AS (
    UPDATE activities a SET cost_usd = a.cost_usd + c.cost_usd
    FROM call c WHERE a.id = c.activity_id
    RETURNING a.deliverable_id
), deliverable AS (
    UPDATE deliverables d SET cost_usd = d.cost_usd + c.cost_usd
    FROM call c, activity WHERE d.id = activity.deliverable_id
), campaign AS (
    UPDATE campaigns m SET spent_usd = m.spent_usd + c.cost_usd
    FROM call c WHERE m.id = c.campaign_id
)
SELECT id, created_at FROM call
"""


def _rollup_upsert(table: str, column: str, unit: str) -> str:
    """Add the call (alias `c`) to its four rows of one rollup table."""
    return f"""
    INSERT INTO {table} AS r
        (tenant_id, dimension, key, {column}, total_usd, input_tokens, output_tokens, call_count)
    SELECT c.tenant_id, d.dimension, d.key, date_trunc('{unit}', c.created_at, 'UTC'),
           c.cost_usd, c.input_tokens, c.output_tokens, 1
    FROM call c
    {DIMENSIONS}
    ON CONFLICT (tenant_id, dimension, key, {column}) DO UPDATE SET
        total_usd = r.total_usd + EXCLUDED.total_usd,
        input_tokens = r.input_tokens + EXCLUDED.input_tokens,
        output_tokens = r.output_tokens + EXCLUDED.output_tokens,
        call_count = r.call_count + EXCLUDED.call_count"""


RECORD_CALL_SQL = RECORD_CALL_TEMPLATE.format(
    HOURLY=_rollup_upsert("llm_spend_hourly", "hour", "hour"),
    DAILY=_rollup_upsert("llm_spend_daily", "day", "day"),
)
