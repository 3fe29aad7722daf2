"""Database benchmarks for the spend and list paths (issue: spend analytics at 1M calls).

For each case it runs the real loader once to capture the exact SQL statements and
parameters it issues, then times them two ways, N runs each after a warm-up:
- `sql`: the captured statements on one raw asyncpg connection (PostgreSQL's time plus the
  wire; prepared statements, as the gateway uses them);
- `loader`: the whole read path (DataLoader → SQLAlchemy → asyncpg → row mapping), a fresh
  set of loaders per run, as one request would pay it.
Recording an LLM call is timed as the gateway's write: one transaction with the call and
all its rollups (domain.llm_calls.record_llm_call), on a scratch activity of the tenant.

Run (after `switchboard seed --bench`, with the same SWITCHBOARD_STATE_DIR):
    python perf/bench_database.py --tenant bench [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import event, text
from stats import nearest_rank  # perf/stats.py, beside this script

from domain.llm_calls import NewLlmCall
from domain.pagination import Page, decode_cursor
from domain.store.llm_calls import record_llm_call
from loaders import Loaders
from switchboard.devdata.seed import rebuild_rollups, stable_id
from switchboard.infra.db import Database, create_engine
from switchboard.infra.embedded import start_services
from switchboard.settings import Settings


class Capture:
    """Collects (statement, parameters) of everything the engine executes while on."""

    def __init__(self, db: Database) -> None:
        self.on = False
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

        @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
        def _record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if self.on:
                self.statements.append((statement, tuple(parameters or ())))

    async def of(self, run: Callable[[], Awaitable[Any]]) -> list[tuple[str, tuple[Any, ...]]]:
        self.statements, self.on = [], True
        try:
            await run()
        finally:
            self.on = False
        return self.statements


async def time_runs(run: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    for _ in range(max(5, runs // 10)):
        await run()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="bench")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    settings = Settings.from_env()
    services = start_services(settings.state_dir, settings.database_url, settings.redis_url)
    db = Database(create_engine(settings, services.database_url))
    raw = await asyncpg.connect(services.database_url.replace("+asyncpg", ""))
    capture = Capture(db)
    tenant_id = stable_id(args.tenant, "tenant")
    try:
        counts = await raw.fetchrow(
            """SELECT (SELECT count(*) FROM llm_calls WHERE tenant_id = $1),
                (SELECT count(*) FROM activities WHERE tenant_id = $1),
                (SELECT count(*) FROM approvals WHERE tenant_id = $1 AND status = 'PENDING')""",
            tenant_id,
        )
        print(
            f"tenant {args.tenant}: {counts[0]:,} LLM calls, {counts[1]:,} activities, "
            f"{counts[2]:,} pending approvals; {args.runs} runs per case\n"
        )
        cases = await build_cases(db, raw, tenant_id)
        print("| case | sql median | sql p99 | loader median | loader p99 | statements |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, run in cases:
            statements = await capture.of(lambda run=run: run(Loaders(db, tenant_id)))

            async def sql_only(statements: list[tuple[str, tuple[Any, ...]]] = statements) -> None:
                for statement, parameters in statements:
                    await raw.fetch(statement, *parameters)

            sql = await time_runs(sql_only, args.runs)
            full = await time_runs(lambda run=run: run(Loaders(db, tenant_id)), args.runs)
            print(
                f"| {name} | {statistics.median(sql):.3f} ms | {nearest_rank(sql, 0.99):.3f} ms "
                f"| {statistics.median(full):.3f} ms | {nearest_rank(full, 0.99):.3f} ms "
                f"| {len(statements)} |"
            )
        await bench_record_call(db, raw, tenant_id, args.runs)
    finally:
        await raw.close()
        await db.dispose()
        services.stop()


Case = tuple[str, Callable[[Loaders], Awaitable[Any]]]


async def build_cases(db: Database, raw: asyncpg.Connection, tenant_id: uuid.UUID) -> list[Case]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cases: list[Case] = []

    async def deep_cursor(loader_name: str, owner: uuid.UUID, depth: int) -> Page:
        loaders = Loaders(db, tenant_id)
        page = await getattr(loaders, loader_name).load((owner, Page(100, None), None))
        after = None
        for _ in range(depth // 100):
            if not page.page_info.has_next_page:
                break
            after = page.page_info.end_cursor
            page = await getattr(Loaders(db, tenant_id), loader_name).load(
                (owner, Page(100, decode_cursor(after)), None)
            )
        return Page(20, decode_cursor(after) if after else None)

    deep_queue = await deep_cursor("pending_approvals_of_tenant", tenant_id, 900)
    cases.append(
        (
            "approval queue, first page (20)",
            lambda ld: ld.pending_approvals_of_tenant.load((tenant_id, Page(20, None), None)),
        )
    )
    cases.append(
        (
            "approval queue, page after 900 rows",
            lambda ld: ld.pending_approvals_of_tenant.load((tenant_id, deep_queue, None)),
        )
    )

    busiest_agent = await raw.fetchval(
        "SELECT agent_id FROM activities WHERE tenant_id = $1 GROUP BY agent_id "
        "ORDER BY count(*) DESC LIMIT 1",
        tenant_id,
    )
    deep_activities = await deep_cursor("activities_of_agent", busiest_agent, 2000)
    cases.append(
        (
            "activity list, first page (20)",
            lambda ld: ld.activities_of_agent.load((busiest_agent, Page(20, None), None)),
        )
    )
    cases.append(
        (
            "activity list, first page (100)",
            lambda ld: ld.activities_of_agent.load((busiest_agent, Page(100, None), None)),
        )
    )
    cases.append(
        (
            "activity list, page after 2,000 rows",
            lambda ld: ld.activities_of_agent.load((busiest_agent, deep_activities, None)),
        )
    )

    for days in (30, 90):
        start = now - dt.timedelta(days=days, minutes=7, seconds=13)
        cases.append(
            (f"spend total, {days} days", lambda ld, s=start: ld.spend.load(("TENANT", "", s, now)))
        )
        for dimension in ("AGENT", "MODEL", "CAMPAIGN", "DAY"):
            cases.append(
                (
                    f"spendReport {dimension}, {days} days",
                    lambda ld, s=start, d=dimension: ld.spend_report.load((d, s, now)),
                )
            )

    campaigns = [
        row[0]
        for row in await raw.fetch(
            "SELECT id FROM campaigns WHERE tenant_id = $1 AND status = 'ACTIVE' "
            "ORDER BY created_at DESC LIMIT 20",
            tenant_id,
        )
    ]
    month = now.replace(day=1, hour=0, minute=0, second=0)
    month_end = (month + dt.timedelta(days=32)).replace(day=1)

    async def campaign_aggregates(ld: Loaders) -> None:
        await asyncio.gather(
            ld.pending_approval_count_of_campaign.load_many(campaigns),
            ld.spend.load_many([("CAMPAIGN", str(c), month, month_end) for c in campaigns]),
            ld.deliverables_of_campaign.load_many([(c, Page(10, None), None) for c in campaigns]),
        )

    cases.append(
        (f"DashboardOverview campaign aggregates ({len(campaigns)} campaigns)", campaign_aggregates)
    )
    return cases


async def bench_record_call(
    db: Database, raw: asyncpg.Connection, tenant_id: uuid.UUID, runs: int
) -> None:
    activity = await raw.fetchrow(
        "SELECT a.id, g.model FROM activities a JOIN agents g ON g.id = a.agent_id "
        "WHERE a.tenant_id = $1 ORDER BY a.created_at DESC LIMIT 1",
        tenant_id,
    )
    call = NewLlmCall(
        activity_id=activity[0],
        provider="openai",
        model=activity[1],
        input_tokens=1200,
        output_tokens=300,
        cost_usd=Decimal("0.004800"),
        latency_ms=900,
    )
    recorded: list[uuid.UUID] = []

    async def record() -> None:
        async with db.transaction() as conn:
            result = await record_llm_call(conn, tenant_id, call)
            recorded.append(result.id)

    samples = await time_runs(record, runs)
    median, p99 = statistics.median(samples), nearest_rank(samples, 0.99)
    print(
        f"| record one LLM call (call + 8 rollup rows + 3 costs, one transaction) "
        f"| – | – | {median:.3f} ms | {p99:.3f} ms | 1 |"
    )
    # Leave the bench data as it was: remove the calls and rebuild the tenant's rollups.
    async with db.transaction() as conn:
        await conn.execute(text("DELETE FROM llm_calls WHERE id = ANY(:ids)"), {"ids": recorded})
        await rebuild_rollups(conn, tenant_id)


if __name__ == "__main__":
    asyncio.run(main())
