"""Metrics: /metrics parses with prometheus_client's own parser, and its values move as
requests are made; with several worker processes it adds up all of them."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from domain.llm_calls import LlmCallFigures
from switchboard.infra.db import Database, create_engine
from switchboard.observability import database as observed_db
from switchboard.observability import metrics
from switchboard.settings import PROJECT_DIR, Settings
from tests.conftest import Servers

PROBE = "query ObsMetricsProbe { viewer { displayName } tenant { name } }"


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) → value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> dict[Any, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def test_metrics_parse_and_move_as_requests_are_made(
    client: httpx.AsyncClient, gql: Any, token: Any
) -> None:
    before = await scrape(client)
    statements = 0
    for _ in range(3):
        response = await gql(PROBE, token=token("acme"))
        assert response.status_code == 200
        statements += int(response.headers["x-sql-statements"])
    # A validation failure answers 200 to an application/json client.
    assert (await gql("query ObsMetricsBroken { nope }", token=token("acme"))).status_code == 200
    assert (await gql(PROBE, token="not-a-token")).status_code == 401
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    labels = {"operation": "ObsMetricsProbe", "type": "query", "audience": "dashboard"}
    assert moved("switchboard_graphql_request_duration_seconds_count", **labels) == 3
    assert moved("switchboard_graphql_request_duration_seconds_sum", **labels) > 0
    assert moved("switchboard_graphql_request_duration_seconds_bucket", le="+Inf", **labels) == 3
    assert (
        moved("switchboard_graphql_errors_total", operation="unknown", code="UNAUTHENTICATED") == 1
    )
    assert (
        moved(
            "switchboard_graphql_errors_total",
            operation="unknown",
            code="GRAPHQL_VALIDATION_FAILED",
        )
        == 1
    )
    assert value(after, "switchboard_graphql_errors_total", operation="ObsMetricsProbe") == 0
    assert (
        moved("switchboard_http_requests_total", route="/graphql", method="POST", status="200") == 4
    )
    assert (
        moved("switchboard_http_requests_total", route="/graphql", method="POST", status="401") == 1
    )
    # The scrape before counts once it has answered.
    assert moved("switchboard_http_requests_total", route="/metrics", method="GET", status="200")
    assert moved("switchboard_db_statement_duration_seconds_count", operation="SELECT") >= (
        statements
    )
    # Each request's statements ran on checked-out connections, held for a while.
    assert moved("switchboard_db_pool_checkouts_total") >= 3
    assert moved("switchboard_db_pool_connection_seconds_total") > 0
    # The scrape is itself the one request in progress; no pooled connection is held now.
    assert value(after, "switchboard_http_requests_in_progress") == 1
    assert value(after, "switchboard_db_pool_connections_in_use") == 0
    assert value(after, "switchboard_db_pool_connections_open") >= 1


async def test_instruments_for_later_features_are_exposed_with_their_labels(
    client: httpx.AsyncClient,
) -> None:
    from switchboard.observability import cache, jobs, live, llm

    cache.record("obs-test", hit=True)
    cache.record("obs-test", hit=True)
    cache.record("obs-test", hit=False)
    with jobs.running("obs_task", jobs.enqueue_labels(), role="COPYWRITER", priority=1):
        pass
    jobs.dead_lettered("obs_task", "COPYWRITER", "gave up")
    live.opened("ObsEvents")
    live.delivered("ObsEvents", 3)
    during = await scrape(client)
    live.closed("ObsEvents")
    spent = LlmCallFigures("obs", "obs-model", 1200, 300, Decimal("0.25"), 900)
    llm.record_llm_spend("ten_obs", "COPYWRITER", spent)
    llm.observe_time_to_first_token(0.8, "COPYWRITER", "obs-model")
    after = await scrape(client)

    assert value(after, "switchboard_cache_requests_total", cache="obs-test", result="hit") == 2
    assert value(after, "switchboard_cache_requests_total", cache="obs-test", result="miss") == 1
    job = {"role": "COPYWRITER", "priority": "1"}
    assert value(after, "switchboard_job_wait_seconds_count", **job) == 1
    assert value(after, "switchboard_job_run_seconds_count", **job) == 1
    assert value(after, "switchboard_jobs_finished_total", outcome="ok", **job) == 1
    assert value(after, "switchboard_jobs_in_progress", role="COPYWRITER") == 0
    assert (
        value(after, "switchboard_job_dead_letters_total", task="obs_task", role="COPYWRITER") == 1
    )
    assert value(during, "switchboard_subscriptions_open", operation="ObsEvents") == 1
    assert value(after, "switchboard_subscriptions_open", operation="ObsEvents") == 0
    assert value(after, "switchboard_subscription_events_total", operation="ObsEvents") == 3
    spend = {"tenant": "ten_obs", "agent": "COPYWRITER", "model": "obs-model"}
    assert value(after, "switchboard_llm_cost_usd_total", **spend) == 0.25
    assert value(after, "switchboard_llm_calls_total", **spend) == 1
    assert value(after, "switchboard_llm_tokens_total", kind="input", **spend) == 1200
    assert value(after, "switchboard_llm_tokens_total", kind="output", **spend) == 300
    assert (
        value(
            after,
            "switchboard_llm_time_to_first_token_seconds_bucket",
            agent="COPYWRITER",
            model="obs-model",
            le="1.0",
        )
        == 1
    )


async def test_the_pool_gauges_count_connections_in_use_and_requests_waiting(
    servers: Servers,
) -> None:
    def scraped(name: str) -> float:  # as a scrape of this process reads the gauge
        return value(parse(metrics.exposition().decode()), name)

    in_use, waiting = (
        "switchboard_db_pool_connections_in_use",
        "switchboard_db_pool_requests_waiting",
    )
    db = Database(create_engine(Settings(db_pool_size=1, db_max_overflow=0), servers.database_url))
    ours = id(db.engine.sync_engine)

    def others_in_use() -> int:
        # The session's in-process gateway (its relay, its hub) checks connections out of
        # its own engines whenever it likes; read at the same instant as the scrape (no
        # await between), they make the gauge's expected value exact.
        return sum(n for key, (n, _) in observed_db._pool_counts.items() if key != ours)

    waiting_before = metrics.DB_POOL_WAITING._value.get()
    try:
        async with db.connect() as held:
            await held.exec_driver_sql("SELECT 1")
            assert scraped(in_use) == others_in_use() + 1
            queued = asyncio.create_task(db.fetch("SELECT 2"))
            for _ in range(1000):  # yield to the loop until the task blocks in the pool
                if metrics.DB_POOL_WAITING._value.get() == waiting_before + 1:
                    break
                await asyncio.sleep(0)
            assert scraped(waiting) == waiting_before + 1
        assert [tuple(r) for r in await queued] == [(2,)]
        assert scraped(waiting) == waiting_before
        assert scraped(in_use) == others_in_use()
    finally:
        await db.dispose()


def _requests_by_process(folder: Path, scratch: Path, labels: dict[str, str]) -> dict[str, float]:
    """The GraphQL requests each worker counted, from its own files alone."""
    served = {}
    for pid in {f.stem.rsplit("_", 1)[1] for f in folder.glob("*.db")}:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        for file in folder.glob(f"*_{pid}.db"):
            shutil.copy(file, scratch / file.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(scratch))
        samples = parse(generate_latest(registry).decode())
        served[pid] = value(samples, "switchboard_graphql_request_duration_seconds_count", **labels)
    return served


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_several_worker_processes_add_up_in_one_exposition(
    servers: Servers, token: Any, tmp_path: Path
) -> None:
    """`switchboard serve --workers 2`: whichever worker answers /metrics counts them all."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "SWITCHBOARD_STATE_DIR": str(tmp_path),
        "SWITCHBOARD_MODE": "development",  # logs on stderr, as in production
    }
    env.pop(metrics.MULTIPROC_ENV, None)
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchboard.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        cwd=PROJECT_DIR,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        started = 0
        async with asyncio.timeout(90):
            while started < 2:  # each worker logs this line once its app is ready
                line = await server.stderr.readline()  # type: ignore[union-attr]
                assert line, "the server exited before its workers started"
                started += b"Application startup complete" in line
        labels = {"operation": "ObsMetricsProbe", "type": "query", "audience": "dashboard"}
        folder = tmp_path / "prometheus"
        requests, served = 0, {}
        # No keep-alive: every request is a new connection, which either worker may accept.
        # Batches go until both gateway workers have answered some (the kernel decides).
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
        ) as http:
            headers = {"authorization": f"Bearer {token('acme')}"}
            while requests < 200 and sum(1 for n in served.values() if n) < 2:
                for _ in range(8):
                    response = await http.post("/graphql", json={"query": PROBE}, headers=headers)
                    assert response.status_code == 200, response.text
                requests += 8
                served = _requests_by_process(folder, tmp_path / "one", labels)
            scraped = parse((await http.get("/metrics")).text)
        # Every process writes its own files (the job worker that `serve` starts too).
        assert sum(1 for n in served.values() if n) == 2, served
        assert sum(served.values()) == requests
        assert value(scraped, "switchboard_graphql_request_duration_seconds_count", **labels) == (
            requests
        )
        assert (
            value(
                scraped,
                "switchboard_http_requests_total",
                route="/graphql",
                method="POST",
                status="200",
            )
            == requests
        )
        # Live gauges add up over live workers: only the scrape itself is in progress.
        assert value(scraped, "switchboard_http_requests_in_progress") == 1
    finally:
        server.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            await server.communicate()
    assert server.returncode == 0
