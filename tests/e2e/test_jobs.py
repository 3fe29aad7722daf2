"""The job system end to end: the real broker on the test Redis, real worker processes
(`python -m tasks.worker`, each serving only its test's tenant), the real database.

Covered: priority order under a backlog, the concurrency cap under load, deduplication, a
worker SIGKILLed in the middle of a job, retries then the dead letter, every budget level,
approval expiry, PAUSED holding and TERMINATED cancelling, the planner, and the
OpenAI-compatible runtime against a local streaming server.
"""

from __future__ import annotations

import socket
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

from domain.ids import to_global_id
from switchboard.infra.db import UNNAMED_STATEMENTS, Database
from tasks.broker import JobStore
from tasks.config import JobSettings
from tasks.queue import configure_agents
from tests.conftest import Servers
from tests.support.jobs import (
    FakeChatServer,
    Worker,
    activity_status,
    enqueue,
    fresh_tenant,
    max_overlap,
    new_work,
    set_agent,
    statuses,
    wait_for,
)

STORE = JobStore()


@pytest.fixture
def workers(servers: Servers) -> Any:
    """start(tenant, **env) → a running Worker; all are stopped after the test."""
    started: list[Worker] = []

    def start(*tenants: Any, **env: object) -> Worker:
        worker = Worker(servers.database_url, servers.redis_url, list(tenants), **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def _start_order(db: asyncpg.Connection, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    rows = await db.fetch(
        "SELECT id FROM activities WHERE id = ANY($1::uuid[]) ORDER BY dispatched_at, id", ids
    )
    return [r["id"] for r in rows]


async def _all(db: asyncpg.Connection, ids: list[uuid.UUID], status: str) -> bool:
    found = await statuses(db, ids)
    return all(s == status for s in found.values()) and len(found) == len(ids)


# Priorities


async def test_strict_priority_order_under_a_backlog(
    servers: Servers, db_conn: asyncpg.Connection, redis: Redis, workers: Any
) -> None:
    """One worker slot, a backlog across three agents: jobs start by priority, FIFO within
    a priority; a priority-1 job enqueued mid-run starts next."""
    tenant = await fresh_tenant(servers.database_url, "prio")
    roles = ["COPYWRITER", "SEO_SPECIALIST", "DATA_ANALYST"]
    backlog: list[tuple[int, int, uuid.UUID]] = []  # (priority, enqueue order, id)
    for n in range(24):
        role = roles[n % 3]
        priority = [7, 3, 9, 5, 3, 10, 1, 5][n % 8]
        (activity,) = await new_work(db_conn, tenant, role, priority=priority)
        assert await enqueue(redis, tenant, role, activity, priority)
        backlog.append((priority, n, activity))
    worker = workers(tenant, SWITCHBOARD_WORKER_SLOTS=1, SWITCHBOARD_SIM_TOKEN_DELAY_MS=3)
    ids = [a for _, _, a in backlog]

    async def started(count: int) -> Any:
        async def check() -> bool:
            n = await db_conn.fetchval(
                "SELECT count(*) FROM activities WHERE id = ANY($1::uuid[]) "
                "AND dispatched_at IS NOT NULL",
                ids,
            )
            return n >= count

        return check

    await wait_for(await started(8), 30)
    (urgent,) = await new_work(db_conn, tenant, "SEO_SPECIALIST", priority=1)
    before = await db_conn.fetchval(
        "SELECT count(*) FROM activities WHERE id = ANY($1::uuid[]) AND dispatched_at IS NOT NULL",
        ids,
    )
    assert await enqueue(redis, tenant, "SEO_SPECIALIST", urgent, 1)
    await wait_for(lambda: _all(db_conn, [*ids, urgent], "AWAITING_APPROVAL"), 60)

    actual = await _start_order(db_conn, [*ids, urgent])
    position = actual.index(urgent)
    # It starts right after the job running when it arrived (or the one after, if that
    # one was claimed in the same instant).
    assert before <= position <= before + 1, (before, position)
    actual.remove(urgent)
    expected = [a for _, _, a in sorted(backlog)]
    assert actual == expected
    assert "worker ready" in worker.output()


# Concurrency caps


async def test_concurrency_caps_hold_across_workers_under_load(
    servers: Servers, db_conn: asyncpg.Connection, redis: Redis, workers: Any
) -> None:
    """Two workers with 4 slots each; agents capped at 2 and 3 never run more at once, and
    do reach their caps."""
    tenant = await fresh_tenant(servers.database_url, "caps")
    caps = {"PAID_ADS_MANAGER": 2, "SEO_SPECIALIST": 3}
    ids: dict[str, list[uuid.UUID]] = {}
    for role, cap in caps.items():
        await set_agent(db_conn, tenant.agent(role), concurrency=cap)
        ids[role] = await new_work(db_conn, tenant, role, count=4 * cap, kind="REPORT")
        for activity in ids[role]:
            assert await enqueue(redis, tenant, role, activity, 5)
    slow = {"SWITCHBOARD_WORKER_SLOTS": 4, "SWITCHBOARD_SIM_TOKEN_DELAY_MS": 15}
    workers(tenant, **slow)
    workers(tenant, **slow)
    every = [a for role_ids in ids.values() for a in role_ids]
    await wait_for(lambda: _all(db_conn, every, "AWAITING_APPROVAL"), 90)
    for role, cap in caps.items():
        rows = await db_conn.fetch(
            "SELECT a.dispatched_at, p.requested_at FROM activities a "
            "JOIN approvals p ON p.activity_id = a.id WHERE a.id = ANY($1::uuid[])",
            ids[role],
        )
        assert max_overlap([(r[0], r[1]) for r in rows]) == cap, role


# Deduplication


async def test_a_job_whose_dedup_key_is_waiting_is_dropped(
    servers: Servers, db_conn: asyncpg.Connection, redis: Redis, workers: Any
) -> None:
    tenant = await fresh_tenant(servers.database_url, "dedup")
    key = f"{tenant.id}:{uuid.uuid4()}:2026-11"
    first, second, third = await new_work(db_conn, tenant, "DATA_ANALYST", count=3, kind="REPORT")
    assert await enqueue(redis, tenant, "DATA_ANALYST", first, 5, dedup_key=key)
    assert not await enqueue(redis, tenant, "DATA_ANALYST", second, 5, dedup_key=key)
    workers(tenant)
    await wait_for(lambda: _all(db_conn, [first], "AWAITING_APPROVAL"), 30)
    await wait_for(lambda: _all(db_conn, [second], "CANCELLED"), 30)
    assert (
        await db_conn.fetchval("SELECT failure_reason FROM activities WHERE id = $1", second)
        == "DUPLICATE"
    )
    # Once the first job started, the key no longer waits: the next period's job runs.
    assert await enqueue(redis, tenant, "DATA_ANALYST", third, 5, dedup_key=key)
    await wait_for(lambda: _all(db_conn, [third], "AWAITING_APPROVAL"), 30)


# Acknowledgement


async def test_a_job_of_a_killed_worker_runs_again_once_to_completion(
    servers: Servers, db_conn: asyncpg.Connection, redis: Redis, workers: Any
) -> None:
    tenant = await fresh_tenant(servers.database_url, "kill")
    (activity,) = await new_work(db_conn, tenant, "COPYWRITER")
    assert await enqueue(redis, tenant, "COPYWRITER", activity, 5)
    slow = {"SWITCHBOARD_SIM_TOKEN_DELAY_MS": 40, "SWITCHBOARD_JOB_LEASE_S": 1.5}
    doomed = workers(tenant, **slow)

    async def streaming() -> bool:
        row = await db_conn.fetchrow(
            "SELECT status, first_token_at FROM activities WHERE id = $1", activity
        )
        return row["status"] == "RUNNING" and row["first_token_at"] is not None

    await wait_for(streaming, 30, interval=0.005)
    doomed.kill()  # SIGKILL: no goodbye, the lease is left to run out
    partial = await db_conn.fetchval("SELECT output FROM activities WHERE id = $1", activity)
    assert await activity_status(db_conn, activity) == "RUNNING"
    survivor = workers(tenant, **slow)
    await wait_for(lambda: _all(db_conn, [activity], "AWAITING_APPROVAL"), 30)

    row = await db_conn.fetchrow(
        "SELECT output, (SELECT count(*) FROM llm_calls WHERE activity_id = a.id) AS calls, "
        "(SELECT count(*) FROM approvals WHERE activity_id = a.id) AS approvals "
        "FROM activities a WHERE a.id = $1",
        activity,
    )
    # Killed before its first turn was recorded; the second delivery ran both turns once.
    assert row["calls"] == 2 and row["approvals"] == 1
    assert row["output"].startswith(partial) and row["output"].count("Draft of the") == 1

    # The worker logs the run's end, then acknowledges its job, after the commit seen above.
    async def settled() -> bool:
        logged = "AWAITING_APPROVAL after 2 turns" in survivor.output()
        return logged and not await redis.exists(STORE.key(f"j:{activity.hex}"))

    await wait_for(settled, 10)
    assert survivor.output().count("AWAITING_APPROVAL after 2 turns") == 1


# Retries, dead letters


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_retries_with_backoff_then_the_dead_letter(
    servers: Servers, db_conn: asyncpg.Connection, redis: Redis, workers: Any
) -> None:
    tenant = await fresh_tenant(servers.database_url, "dead")
    agent = tenant.agent("COPYWRITER")
    await set_agent(db_conn, agent, model="openai-compat/broken-model")
    (activity,) = await new_work(db_conn, tenant, "COPYWRITER", kind="EMAIL")
    dead_before = await STORE.dead_letter_count(redis)
    metrics_port = _free_port()
    async with FakeChatServer(["never"], failures=1000) as server:
        worker = workers(
            tenant,
            SWITCHBOARD_OPENAI_COMPAT_BASE_URL=server.base_url,
            SWITCHBOARD_WORKER_METRICS_PORT=metrics_port,
        )
        await worker.ready()
        assert await enqueue(redis, tenant, "COPYWRITER", activity, 2)
        await wait_for(lambda: _all(db_conn, [activity], "FAILED"), 30)
        assert len(server.requests) == 4  # the first attempt and 3 retries
    failed = await db_conn.fetchrow(
        "SELECT failure_reason, output FROM activities WHERE id = $1", activity
    )
    assert "500" in failed["failure_reason"] and "after 4 attempts" in failed["failure_reason"]
    assert await db_conn.fetchval("SELECT status FROM agents WHERE id = $1", agent) == "ERROR"
    escalation = await db_conn.fetchrow(
        "SELECT id, status, wake_reason, priority FROM activities WHERE revision_of = $1",
        activity,
    )
    assert escalation["status"] == "ESCALATED" and escalation["wake_reason"] == "ESCALATION"
    assert (
        await db_conn.fetchval(
            "SELECT count(*) FROM tenant_events WHERE tenant_id = $1 "
            "AND type = 'ESCALATION_CREATED' AND activity_id = $2",
            tenant.id,
            escalation["id"],
        )
        == 1
    )
    assert await STORE.dead_letter_count(redis) == dead_before + 1
    async with httpx.AsyncClient() as http:
        scraped = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(
                (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            )
            for sample in family.samples
        }
    dead = {("task", "run_activity"), ("role", "COPYWRITER")}
    assert scraped[("switchboard_job_dead_letters_total", frozenset(dead))] == 1
    retried = {("role", "COPYWRITER"), ("priority", "2"), ("outcome", "retry")}
    assert scraped[("switchboard_jobs_finished_total", frozenset(retried))] == 3
    assert "retry 3/3" in worker.output()


async def test_the_openai_compatible_runtime_streams_and_a_retry_recovers(
    servers: Servers, db_conn: asyncpg.Connection, redis: Redis, workers: Any
) -> None:
    """Two failures, then a streamed completion: the activity finishes on the third attempt
    with the server's text and usage, priced from the table by the model's name."""
    tenant = await fresh_tenant(servers.database_url, "compat")
    agent = tenant.agent("SEO_SPECIALIST")
    await set_agent(db_conn, agent, model="openai-compat/gpt-4.1-mini")
    (activity,) = await new_work(db_conn, tenant, "SEO_SPECIALIST", kind="SEO_AUDIT")
    words = ["Audit: ", "fix ", "canonical ", "tags ", "and ", "sitemaps."]
    async with FakeChatServer(words, failures=2, usage=(321, 6)) as server:
        workers(tenant, SWITCHBOARD_OPENAI_COMPAT_BASE_URL=server.base_url)
        assert await enqueue(redis, tenant, "SEO_SPECIALIST", activity, 5)
        await wait_for(lambda: _all(db_conn, [activity], "AWAITING_APPROVAL"), 30)
        assert len(server.requests) == 3
        request = server.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["stream"] is True and request["body"]["model"] == "gpt-4.1-mini"
    assert request["body"]["messages"][0]["role"] == "system"
    row = await db_conn.fetchrow(
        "SELECT a.output, a.first_token_at, a.dispatched_at, p.risk_level "
        "FROM activities a JOIN approvals p ON p.activity_id = a.id WHERE a.id = $1",
        activity,
    )
    assert row["output"] == "".join(words)
    assert row["first_token_at"] >= row["dispatched_at"]
    assert row["risk_level"] == "LOW"
    call = await db_conn.fetchrow(
        "SELECT provider, model, input_tokens, output_tokens, cost_usd FROM llm_calls "
        "WHERE activity_id = $1",
        activity,
    )
    assert tuple(call) == (
        "openai-compat",
        "openai-compat/gpt-4.1-mini",
        321,
        6,
        Decimal("0.000138"),  # 321 × $0.40/M + 6 × $1.60/M
    )


# Budgets


@pytest.mark.parametrize("level", ["activity", "campaign", "tenant"])
async def test_each_budget_stops_the_run_and_nothing_more_is_spent(
    level: str, servers: Servers, db_conn: asyncpg.Connection, redis: Redis, workers: Any
) -> None:
    """The cap allows the first turn and is reached by it: the second turn never happens,
    the activity is FAILED with BUDGET_EXCEEDED."""
    tenant = await fresh_tenant(servers.database_url, f"budget-{level}")
    agent = tenant.agent("COPYWRITER")
    campaign = await db_conn.fetchval(
        "SELECT id FROM campaigns WHERE tenant_id = $1 AND status = 'ACTIVE' "
        "ORDER BY created_at LIMIT 1",
        tenant.id,
    )
    await set_agent(db_conn, agent, max_cost_usd_per_activity=None)
    await db_conn.execute("UPDATE campaigns SET budget_cap_usd = NULL WHERE id = $1", campaign)
    await db_conn.execute(
        "UPDATE tenants SET monthly_spend_cap_usd = NULL WHERE id = $1", tenant.id
    )
    tiny = Decimal("0.000001")
    if level == "activity":
        await set_agent(db_conn, agent, max_cost_usd_per_activity=tiny)
    elif level == "campaign":
        await db_conn.execute(
            "UPDATE campaigns SET budget_cap_usd = spent_usd + $2 WHERE id = $1", campaign, tiny
        )
    else:
        await db_conn.execute(
            "UPDATE tenants SET monthly_spend_cap_usd = $2 + coalesce((SELECT sum(total_usd) "
            "FROM llm_spend_daily WHERE tenant_id = $1 AND dimension = 'TENANT' "
            "AND day >= date_trunc('month', now(), 'UTC')), 0) WHERE id = $1",
            tenant.id,
            tiny,
        )
    (activity,) = await new_work(db_conn, tenant, "COPYWRITER", campaign_id=campaign)
    workers(tenant)
    assert await enqueue(redis, tenant, "COPYWRITER", activity, 5)
    await wait_for(lambda: _all(db_conn, [activity], "FAILED"), 30)
    row = await db_conn.fetchrow(
        "SELECT failure_reason, output, (SELECT count(*) FROM llm_calls WHERE activity_id = a.id) "
        "AS calls FROM activities a WHERE a.id = $1",
        activity,
    )
    assert row["failure_reason"] == "BUDGET_EXCEEDED"
    assert row["calls"] == 1
    assert "Outline of the" in row["output"] and "Draft of the" not in row["output"]
    # Already over the cap: the next activity spends nothing at all.
    (second,) = await new_work(db_conn, tenant, "COPYWRITER", campaign_id=campaign)
    if level == "activity":  # a fresh activity has spent nothing; reach the cap first
        await set_agent(db_conn, agent, max_cost_usd_per_activity=Decimal(0))
    assert await enqueue(redis, tenant, "COPYWRITER", second, 5)
    await wait_for(lambda: _all(db_conn, [second], "FAILED"), 30)
    assert (
        await db_conn.fetchval("SELECT count(*) FROM llm_calls WHERE activity_id = $1", second) == 0
    )


# Approvals


async def test_overdue_approvals_expire_and_escalate(
    servers: Servers, db_conn: asyncpg.Connection, redis: Redis, workers: Any
) -> None:
    tenant = await fresh_tenant(servers.database_url, "expiry")
    overdue, fresh = await new_work(db_conn, tenant, "PAID_ADS_MANAGER", count=2, kind="AD_SET")
    for activity in (overdue, fresh):
        assert await enqueue(redis, tenant, "PAID_ADS_MANAGER", activity, 5)
    worker = workers(tenant)
    await wait_for(lambda: _all(db_conn, [overdue, fresh], "AWAITING_APPROVAL"), 30)
    approval = await db_conn.fetchrow(
        "SELECT status, risk_level, expires_at - requested_at AS ttl FROM approvals "
        "WHERE activity_id = $1",
        fresh,
    )
    assert approval["status"] == "PENDING" and approval["risk_level"] == "HIGH"
    assert approval["ttl"].total_seconds() == 48 * 3600
    await db_conn.execute(
        "UPDATE approvals SET expires_at = now() - interval '1 minute' WHERE activity_id = $1",
        overdue,
    )
    await wait_for(lambda: _all(db_conn, [overdue], "ESCALATED"), 30)
    assert (
        await db_conn.fetchval("SELECT status FROM approvals WHERE activity_id = $1", overdue)
        == "EXPIRED"
    )
    assert (
        await db_conn.fetchval(
            "SELECT count(*) FROM tenant_events WHERE type = 'ESCALATION_CREATED' "
            "AND activity_id = $1",
            overdue,
        )
        == 1
    )
    assert await activity_status(db_conn, fresh) == "AWAITING_APPROVAL"
    assert "expired 1 overdue approvals" in worker.output()


# PAUSED, TERMINATED


async def test_paused_agents_hold_their_jobs_and_terminated_ones_cancel_them(
    servers: Servers,
    db_conn: asyncpg.Connection,
    redis: Redis,
    workers: Any,
    gql: Any,
    token: Any,
) -> None:
    """Through setAgentStatus: a PAUSED agent's urgent jobs wait without holding up other
    agents' jobs, and run after IDLE; a TERMINATED agent's waiting jobs are cancelled."""
    tenant = await fresh_tenant(servers.database_url, "pause")
    admin = token(tenant.slug, "admin")
    set_status = """mutation($id: ID!, $status: AgentStatus!) { setAgentStatus(id: $id,
        status: $status) { agent { status } userErrors { code } } }"""

    async def agent_status(role: str, status: str) -> None:
        response = await gql(
            set_status, {"id": to_global_id("Agent", tenant.agent(role)), "status": status}, admin
        )
        assert response.json()["data"]["setAgentStatus"]["agent"]["status"] == status

    await agent_status("COPYWRITER", "PAUSED")
    held = await new_work(db_conn, tenant, "COPYWRITER", count=3, priority=1)
    others = await new_work(db_conn, tenant, "DATA_ANALYST", count=3, priority=8, kind="REPORT")
    doomed = await new_work(db_conn, tenant, "SOCIAL_MEDIA_MANAGER", count=3, priority=2)
    await agent_status("SOCIAL_MEDIA_MANAGER", "PAUSED")
    for role, ids, priority in (
        ("COPYWRITER", held, 1),
        ("DATA_ANALYST", others, 8),
        ("SOCIAL_MEDIA_MANAGER", doomed, 2),
    ):
        for activity in ids:
            assert await enqueue(redis, tenant, role, activity, priority)
    workers(tenant, SWITCHBOARD_WORKER_SLOTS=1)
    await wait_for(lambda: _all(db_conn, others, "AWAITING_APPROVAL"), 30)
    assert set((await statuses(db_conn, held)).values()) == {"QUEUED"}

    await agent_status("SOCIAL_MEDIA_MANAGER", "TERMINATED")
    assert set((await statuses(db_conn, doomed)).values()) == {"CANCELLED"}
    agent = tenant.agent("SOCIAL_MEDIA_MANAGER").hex
    assert await redis.scard(STORE.key(f"jobs:{agent}")) == 0

    await agent_status("COPYWRITER", "IDLE")
    await wait_for(lambda: _all(db_conn, held, "AWAITING_APPROVAL"), 30)
    assert set((await statuses(db_conn, doomed)).values()) == {"CANCELLED"}


async def test_a_terminated_agents_jobs_stay_held_whatever_a_late_resync_read(
    servers: Servers,
    db_conn: asyncpg.Connection,
    redis: Redis,
    gql: Any,
    token: Any,
) -> None:
    """A worker's agent re-sync that read the agent's status just before it was terminated
    cannot release its jobs for claiming, and the next re-sync cancels a job that reached
    the queue after the termination (with its activity)."""
    tenant = await fresh_tenant(servers.database_url, "held")
    agent = tenant.agent("SEO_SPECIALIST")
    [late] = await new_work(db_conn, tenant, "SEO_SPECIALIST", kind="SEO_AUDIT")
    response = await gql(
        """mutation($id: ID!) { setAgentStatus(id: $id, status: TERMINATED) {
        agent { status } } }""",
        {"id": to_global_id("Agent", agent)},
        token(tenant.slug, "admin"),
    )
    assert response.json()["data"]["setAgentStatus"]["agent"]["status"] == "TERMINATED"
    assert await activity_status(db_conn, late) == "CANCELLED"

    # The re-sync read IDLE before the termination committed and writes after it; the job
    # of an activity committed before the termination is enqueued after it.
    await STORE.configure(redis, agent.hex, tenant.id.hex, 3, paused=False)
    assert await enqueue(redis, tenant, "SEO_SPECIALIST", late, 5)
    assert await redis.zcard(STORE.key(f"r:{agent.hex}")) == 1  # ready, yet…
    assert await redis.zscore(STORE.key("eligible"), agent.hex) is None  # …no worker takes it

    db = Database(create_async_engine(servers.database_url, connect_args=UNNAMED_STATEMENTS))
    try:
        settings = JobSettings(tenants=(tenant.id,))
        assert await configure_agents(redis, db, None, settings) == 7
    finally:
        await db.dispose()
    assert await redis.scard(STORE.key(f"jobs:{agent.hex}")) == 0
    assert await db_conn.fetchval(
        "SELECT dispatched_at IS NULL AND status = 'CANCELLED' FROM activities WHERE id = $1",
        late,
    )


# The planner


async def test_submitting_a_campaign_plans_and_runs_its_deliverables(
    servers: Servers,
    db_conn: asyncpg.Connection,
    workers: Any,
    gql: Any,
    token: Any,
) -> None:
    tenant = await fresh_tenant(servers.database_url, "plan")
    marketer = token(tenant.slug, "marketer")
    created = await gql(
        """mutation { createCampaign(input: {name: "Autumn Push", goal: "More trail sales"}) {
        campaign { id } userErrors { code } } }""",
        token=marketer,
    )
    campaign_gid = created.json()["data"]["createCampaign"]["campaign"]["id"]
    workers(tenant, SWITCHBOARD_WORKER_SLOTS=4)
    submitted = await gql(
        "mutation($id: ID!) { submitCampaign(id: $id) { campaign { status } "
        "userErrors { code } } }",
        {"id": campaign_gid},
        marketer,
    )
    assert submitted.json()["data"]["submitCampaign"]["campaign"]["status"] == "ACTIVE"
    campaign = uuid.UUID(hex=campaign_gid.partition("_")[2])

    async def planned() -> Any:
        rows = await db_conn.fetch(
            "SELECT a.status, g.role, d.kind FROM activities a JOIN agents g ON g.id = a.agent_id "
            "JOIN deliverables d ON d.id = a.deliverable_id WHERE a.campaign_id = $1",
            campaign,
        )
        done = [r for r in rows if r["status"] in ("COMPLETED", "AWAITING_APPROVAL")]
        return rows if len(rows) == 6 and len(done) == 6 else None

    rows = await wait_for(planned, 60)
    by_role = {(r["role"], r["kind"]): r["status"] for r in rows}
    assert by_role[("ACTIVITY_PLANNER", "REPORT")] == "COMPLETED"
    assert by_role[("PAID_ADS_MANAGER", "AD_SET")] == "AWAITING_APPROVAL"
    risks = dict(
        await db_conn.fetch(
            "SELECT d.kind, p.risk_level FROM approvals p "
            "JOIN activities a ON a.id = p.activity_id "
            "JOIN deliverables d ON d.id = a.deliverable_id WHERE p.campaign_id = $1",
            campaign,
        )
    )
    assert risks == {
        "BLOG_POST": "MEDIUM",
        "SOCIAL_POST": "MEDIUM",
        "EMAIL": "HIGH",
        "SEO_AUDIT": "LOW",
        "AD_SET": "HIGH",
    }
    assert (
        await db_conn.fetchval(
            "SELECT count(*) FROM deliverables WHERE campaign_id = $1 AND status = 'IN_REVIEW'",
            campaign,
        )
        == 5
    )
