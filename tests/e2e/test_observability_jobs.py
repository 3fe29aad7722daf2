"""Observability of agent work, end to end: a real worker process (`python -m tasks.worker`,
serving only its test's tenant) writes its metrics to a Prometheus multiprocess folder, and
the gateway's /metrics, pointed at that folder as `switchboard serve` points it, shows them.

Covered: a dispatched activity's job wait and run time by role and priority, its job span
continuing the dispatching request's trace, LLM spend by tenant, agent and model and the
time to first token (the worker's path and the recordLlmCall mutation), the dead letter,
and the response cache's hits.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

from domain.ids import parse_id_of, to_global_id
from domain.store.work import create_deliverable
from switchboard.observability import metrics
from tests.conftest import Servers
from tests.e2e.test_observability_metrics import parse, value
from tests.integration.test_observability_traces import _install
from tests.support.edge import MOBILE_HOME_ID, bearer, gateway, persisted
from tests.support.jobs import (
    FakeChatServer,
    Worker,
    activity_status,
    enqueue,
    fresh_tenant,
    new_work,
    wait_for,
)

DISPATCH = """mutation Dispatch($input: DispatchActivityInput!) {
  dispatchActivity(input: $input) { activity { id } userErrors { code message } } }"""
PROGRESS = """mutation Progress($input: ActivityProgressInput!) {
  reportActivityProgress(input: $input) { activity { status } userErrors { code message } } }"""
JOB_SPAN = re.compile(
    r'"name": "job run_activity",\s*"context": \{\s*"trace_id": "0x(?P<trace>\w+)".*?'
    r'"parent_id": "0x(?P<parent>\w+)"',
    re.DOTALL,
)
RECORD = """mutation Record($input: RecordLlmCallInput!) {
  recordLlmCall(input: $input) { llmCall { id } userErrors { code message } } }"""


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The gateway's spans, recorded (tracing on, as when it exports)."""
    yield from _install(ALWAYS_ON)


@pytest.fixture
def worker_metrics(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    """start(tenant, **env) → a running Worker writing its metrics to a multiprocess folder
    that this process's /metrics reads (as under `switchboard serve`)."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(folder))
    started: list[Worker] = []

    def start(tenant: Any, **env: object) -> Worker:
        worker = Worker(
            servers.database_url,
            servers.redis_url,
            [tenant],
            PROMETHEUS_MULTIPROC_DIR=folder,
            **env,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def _scrape(client: httpx.AsyncClient) -> dict[Any, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)


async def _scraped_when(client: httpx.AsyncClient, check: Any, timeout: float = 30) -> Any:
    """Scrape until `check(samples)` holds (the worker records just after its commits)."""

    async def scraped() -> Any:
        samples = await _scrape(client)
        return samples if check(samples) else None

    return await wait_for(scraped, timeout, interval=0.05)


async def test_a_dispatched_activity_is_timed_traced_and_its_spend_counted(
    servers: Servers,
    db_conn: asyncpg.Connection,
    client: httpx.AsyncClient,
    gql: Any,
    token: Any,
    worker_metrics: Any,
    spans: InMemorySpanExporter,
) -> None:
    tenant = await fresh_tenant(servers.database_url, "obsjob")
    worker = worker_metrics(tenant, OTEL_TRACES_EXPORTER="console")
    await worker.ready()
    engine = create_async_engine(servers.database_url)
    try:
        async with engine.begin() as conn:
            campaign = await db_conn.fetchval(
                "SELECT id FROM campaigns WHERE tenant_id = $1 AND status = 'ACTIVE' "
                "ORDER BY created_at LIMIT 1",
                tenant.id,
            )
            deliverable = (
                await create_deliverable(conn, tenant.id, campaign, "Observed", "BLOG_POST", None)
            )["id"]
    finally:
        await engine.dispose()
    model = await db_conn.fetchval(
        "SELECT model FROM agents WHERE id = $1", tenant.agent("COPYWRITER")
    )
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    response = await client.post(
        "/graphql",
        json={
            "query": DISPATCH,
            "variables": {
                "input": {
                    "deliverableId": to_global_id("Deliverable", deliverable),
                    "role": "COPYWRITER",
                    "priority": 3,
                }
            },
        },
        headers={
            "authorization": f"Bearer {token(tenant.slug)}",
            "traceparent": f"00-{trace_id}-{parent_id}-01",
        },
    )
    payload = response.json()["data"]["dispatchActivity"]
    assert payload["userErrors"] == [], payload
    activity = parse_id_of("Activity", payload["activity"]["id"])

    async def awaiting() -> bool:
        return await activity_status(db_conn, activity) == "AWAITING_APPROVAL"

    await wait_for(awaiting, 30)
    job = {"role": "COPYWRITER", "priority": "3"}
    samples = await _scraped_when(
        client, lambda s: value(s, "switchboard_job_run_seconds_count", **job) == 1
    )
    assert value(samples, "switchboard_job_wait_seconds_count", **job) == 1
    assert value(samples, "switchboard_jobs_finished_total", outcome="ok", **job) == 1
    assert value(samples, "switchboard_jobs_in_progress", role="COPYWRITER") == 0

    # Spend: what the worker recorded, by tenant, agent (role) and model.
    calls = await db_conn.fetchrow(
        "SELECT count(*) AS n, sum(cost_usd) AS cost, sum(input_tokens) AS input, "
        "sum(output_tokens) AS output FROM llm_calls WHERE activity_id = $1",
        activity,
    )
    assert calls["n"] >= 1
    spend = {"tenant": to_global_id("Tenant", tenant.id), "agent": "COPYWRITER", "model": model}
    assert value(samples, "switchboard_llm_calls_total", **spend) == calls["n"]
    assert value(samples, "switchboard_llm_cost_usd_total", **spend) == pytest.approx(
        float(calls["cost"])
    )
    assert value(samples, "switchboard_llm_tokens_total", kind="input", **spend) == calls["input"]
    assert value(samples, "switchboard_llm_tokens_total", kind="output", **spend) == calls["output"]
    first_token = {"agent": "COPYWRITER", "model": model}
    assert value(samples, "switchboard_llm_time_to_first_token_seconds_count", **first_token) == 1
    row = await db_conn.fetchrow(
        "SELECT extract(epoch FROM first_token_at - dispatched_at) AS s FROM activities "
        "WHERE id = $1",
        activity,
    )
    observed = value(samples, "switchboard_llm_time_to_first_token_seconds_sum", **first_token)
    assert observed == pytest.approx(float(row["s"]), abs=1e-3)

    # The job's span (printed by the worker's console exporter) continues the request's
    # trace: same trace id, its parent a span of the dispatching request.
    async def exported() -> re.Match[str] | None:
        return JOB_SPAN.search(worker.output())

    job_span = await wait_for(exported, 30)
    request_spans = {
        format(span.context.span_id, "016x")
        for span in spans.get_finished_spans()
        if format(span.context.trace_id, "032x") == trace_id
    }
    assert job_span["trace"] == trace_id
    assert job_span["parent"] in request_spans


async def test_the_dead_letter_is_counted_with_its_retries(
    servers: Servers,
    db_conn: asyncpg.Connection,
    redis: Redis,
    client: httpx.AsyncClient,
    worker_metrics: Any,
) -> None:
    tenant = await fresh_tenant(servers.database_url, "obsdead")
    await db_conn.execute(
        "UPDATE agents SET model = 'openai-compat/broken-model' WHERE id = $1",
        tenant.agent("COPYWRITER"),
    )
    (activity,) = await new_work(db_conn, tenant, "COPYWRITER", kind="EMAIL")
    async with FakeChatServer(["never"], failures=1000) as server:
        worker = worker_metrics(tenant, SWITCHBOARD_OPENAI_COMPAT_BASE_URL=server.base_url)
        await worker.ready()
        assert await enqueue(redis, tenant, "COPYWRITER", activity, 2)
        samples = await _scraped_when(
            client,
            lambda s: (
                value(
                    s, "switchboard_job_dead_letters_total", task="run_activity", role="COPYWRITER"
                )
                == 1
            ),
        )
    assert await activity_status(db_conn, activity) == "FAILED"
    job = {"role": "COPYWRITER", "priority": "2"}
    assert value(samples, "switchboard_jobs_finished_total", outcome="retry", **job) == 3
    assert value(samples, "switchboard_jobs_finished_total", outcome="error", **job) == 1
    assert value(samples, "switchboard_job_wait_seconds_count", **job) == 4
    assert value(samples, "switchboard_job_run_seconds_count", **job) == 4


async def test_the_record_llm_call_mutation_counts_spend(
    servers: Servers,
    db_conn: asyncpg.Connection,
    client: httpx.AsyncClient,
    gql: Any,
    agent_token: Any,
) -> None:
    tenant = await fresh_tenant(servers.database_url, "obsllm")
    (activity,) = await new_work(db_conn, tenant, "SEO_SPECIALIST", kind="SEO_AUDIT")
    agent = agent_token(tenant.slug, "SEO_SPECIALIST")
    activity_gid = to_global_id("Activity", activity)
    started = await gql(
        PROGRESS, {"input": {"activityId": activity_gid, "status": "RUNNING"}}, token=agent
    )
    assert started.json()["data"]["reportActivityProgress"]["userErrors"] == []
    spend = {
        "tenant": to_global_id("Tenant", tenant.id),
        "agent": "SEO_SPECIALIST",
        "model": "obs-test-model",
    }
    before = parse((await client.get("/metrics")).text)
    call = {
        "activityId": activity_gid,
        "provider": "openai",
        "model": "obs-test-model",
        "inputTokens": 1200,
        "outputTokens": 80,
        "costUsd": "0.0125",
        "latencyMs": 900,
    }
    recorded = await gql(RECORD, {"input": call}, token=agent)
    assert recorded.json()["data"]["recordLlmCall"]["userErrors"] == [], recorded.text
    after = parse((await client.get("/metrics")).text)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels, **spend) - value(before, name, **labels, **spend)

    assert moved("switchboard_llm_calls_total") == 1
    assert moved("switchboard_llm_cost_usd_total") == pytest.approx(0.0125)
    assert moved("switchboard_llm_tokens_total", kind="input") == 1200
    assert moved("switchboard_llm_tokens_total", kind="output") == 80


async def test_a_response_cache_hit_moves_the_cache_metric(
    servers: Servers, client: httpx.AsyncClient, token: Any
) -> None:
    tenant = await fresh_tenant(servers.database_url, "obscache")
    mobile = bearer(token(tenant.slug, "marketer", "mobile"))
    home = {"extensions": persisted(MOBILE_HOME_ID)}
    labels = {"cache": "response"}
    before = parse((await client.get("/metrics")).text)
    async with gateway(servers, response_cache=True) as (_, gateway_client):
        for _ in range(2):
            response = await gateway_client.post("/graphql", json=home, headers=mobile)
            assert response.status_code == 200, response.text
    after = parse((await client.get("/metrics")).text)

    def moved(result: str) -> float:
        name = "switchboard_cache_requests_total"
        return value(after, name, result=result, **labels) - value(
            before, name, result=result, **labels
        )

    assert (moved("miss"), moved("hit")) == (1, 1)
