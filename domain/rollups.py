"""Spend rollups: kept exact alongside the raw LLM calls.

`llm_spend_hourly` holds per hour the spend of each tenant (dimension TENANT), agent,
model and campaign; `cost_usd` on activities and deliverables and `spent_usd` on campaigns
hold all-time spend. `REBUILD_SQL` recomputes all of them for one tenant from the raw
rows (after a bulk load); each recorded call updates them in its own transaction.
"""

REBUILD_SQL = [
    "DELETE FROM llm_spend_hourly WHERE tenant_id = :tenant_id",
    """
    INSERT INTO llm_spend_hourly
        (tenant_id, dimension, key, hour, total_usd, input_tokens, output_tokens, call_count)
    SELECT c.tenant_id, d.dimension, d.key, date_trunc('hour', c.created_at, 'UTC'),
           sum(c.cost_usd), sum(c.input_tokens), sum(c.output_tokens), count(*)
    FROM llm_calls c
    CROSS JOIN LATERAL (VALUES
        ('TENANT', ''), ('AGENT', c.agent_id::text), ('MODEL', c.model),
        ('CAMPAIGN', c.campaign_id::text)
    ) AS d(dimension, key)
    WHERE c.tenant_id = :tenant_id
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
