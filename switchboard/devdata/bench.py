"""Benchmark data: the large `bench` tenant, loaded with COPY by `switchboard seed --bench`.

`seed_bench` writes one tenant, `bench` ("Bench Co."), sized like a busy agency client:
4 users and one agent per role (as in the demo tenants), 20 ACTIVE campaigns and 4 in other
statuses with 12 deliverables each, 10,000 activities over the last 90 days, exactly 1,000
PENDING approvals (plus about 8,200 resolved ones) and 1,000,000 LLM calls, then rebuilds
the spend rollups and refreshes the planner's statistics. Everything comes from one seeded
`random.Random` and offsets from the start of the seeding day, so two runs on the same day
write the same rows. Each row is written by the generator core it shares with the demo
(`switchboard.devdata.seed`: `TenantRows`, `llm_call_row`), with its columns, COPY and
rollups; this module chooses the counts, statuses and times.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, overload

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from domain.enums import MemberRole
from switchboard.devdata.seed import (
    APPROVAL_FOR_ACTIVITY,
    TERMINAL,
    Rows,
    TenantRows,
    copy_rows,
    llm_call_row,
    rebuild_rollups,
    seeding_anchor,
    stable_id,
)

SLUG = "bench"
NAME = "Bench Co."
MONTHLY_CAP = Decimal("15000.00")

ACTIVE_CAMPAIGNS = 20
# Where the other statuses sit among the campaigns (by creation order), so the ACTIVE ones
# are not simply the oldest 20.
OTHER_CAMPAIGNS = {3: "DRAFT", 9: "PAUSED", 15: "COMPLETED", 21: "ARCHIVED"}
DELIVERABLES_PER_CAMPAIGN = 12
ACTIVITIES = 10_000
LLM_CALLS = 1_000_000
COPY_CHUNK = 100_000

# How the 10,000 activities divide over statuses; AWAITING_APPROVAL is exactly the number
# of PENDING approvals, as each waiting activity has one.
ACTIVITY_STATUS_COUNTS = {
    "COMPLETED": 6_000,
    "CANCELLED": 1_500,
    "AWAITING_APPROVAL": 1_000,
    "FAILED": 500,
    "REVISING": 400,
    "ESCALATED": 300,
    "RUNNING": 150,
    "QUEUED": 150,
}
APPROVAL_COMMENTS = {
    "REVISION_REQUESTED": "Tighten the headline.",
    "REJECTED": "Off-brand; start again from the brief.",
}
# Work still in flight belongs to campaigns that are running; old campaigns only hold
# finished work.
IN_FLIGHT = {"AWAITING_APPROVAL", "RUNNING", "QUEUED", "REVISING"}

HOUR = 3600.0
DAY = 24 * HOUR
TABLES_TO_ANALYZE = (
    "tenants",
    "users",
    "memberships",
    "agents",
    "campaigns",
    "deliverables",
    "activities",
    "approvals",
    "llm_calls",
    "llm_spend_hourly",
    "skills",
    "preferences",
)


@dataclass(slots=True)
class Started:
    """What the LLM-call generator needs of an activity that has produced tokens."""

    activity_id: uuid.UUID
    agent_id: uuid.UUID
    campaign_id: uuid.UUID
    model: str
    first_token: float  # epoch seconds
    work_s: float  # how long its calls span


async def seed_bench(database_url: str, connect_args: dict[str, Any] | None = None) -> None:
    """Create the `bench` tenant unless it exists; prints how long each step took."""
    engine = create_async_engine(database_url, connect_args=connect_args or {})
    try:
        async with engine.begin() as conn:
            exists = (
                await conn.execute(text("SELECT 1 FROM tenants WHERE slug = :slug"), {"slug": SLUG})
            ).first()
            if exists:
                print(f"The `{SLUG}` tenant already exists; nothing to do.")
                return
            await write_bench(conn, seeding_anchor())
        # ANALYZE needs the rows committed to count them; VACUUM (which cannot run in a
        # transaction) also sets hint bits and the visibility map, so the first benchmark
        # queries do not pay for that and index-only scans are possible.
        started = time.perf_counter()
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f"VACUUM (ANALYZE) {', '.join(TABLES_TO_ANALYZE)}"))
        print(f"  vacuum + analyze        {time.perf_counter() - started:6.1f} s")
    finally:
        await engine.dispose()


async def write_bench(conn: AsyncConnection, anchor: dt.datetime) -> uuid.UUID:
    """Write the tenant in the caller's transaction; returns its ID."""
    total = time.perf_counter()
    rng = random.Random(f"switchboard-bench:{anchor.date().isoformat()}")
    rows, started = bench_rows(rng, anchor)
    tenant_id = rows.tables["tenants"][0][0]
    _report("generate (small tables)", total)

    step = time.perf_counter()
    await copy_rows(conn, rows)
    _report("copy (small tables)", step)

    step = time.perf_counter()
    calls = 0
    for chunk in llm_call_chunks(rng, tenant_id, started):
        await copy_rows(conn, Rows({"llm_calls": chunk}))
        calls += len(chunk)
    _report(f"llm_calls ({calls:,})", step)

    step = time.perf_counter()
    await rebuild_rollups(conn, tenant_id)
    _report("rebuild rollups", step)
    _report("total in transaction", total)
    print(
        f"Seeded `{SLUG}`: {len(rows.tables['campaigns'])} campaigns, "
        f"{len(rows.tables['deliverables'])} deliverables, "
        f"{len(rows.tables['activities']):,} activities, "
        f"{len(rows.tables['approvals']):,} approvals, {calls:,} LLM calls"
    )
    return tenant_id


def _report(what: str, since: float) -> None:
    print(f"  {what:<23} {time.perf_counter() - since:6.1f} s", flush=True)


def bench_rows(rng: random.Random, anchor: dt.datetime) -> tuple[Rows, list[Started]]:
    """Every table but llm_calls, and the activities that calls will be spread over."""
    opened = anchor - dt.timedelta(days=120)
    tenant = TenantRows.open(SLUG, NAME, MONTHLY_CAP, opened)
    tenant.house_style(opened, "- British spelling.\n- Banned words: *cheap*.")

    # (deliverable id, campaign id, kind, campaign is ACTIVE)
    deliverables: list[tuple[uuid.UUID, uuid.UUID, str, bool]] = []
    for c in range(ACTIVE_CAMPAIGNS + len(OTHER_CAMPAIGNS)):
        status = OTHER_CAMPAIGNS.get(c, "ACTIVE")
        created = anchor - dt.timedelta(days=100) + dt.timedelta(hours=c * 5)
        campaign_id, theme = tenant.campaign(
            c,
            status,
            None if c % 4 == 3 else Decimal(1000 + 500 * (c % 5)),
            created,
            dt.timedelta(days=150),
        )
        for d in range(DELIVERABLES_PER_CAMPAIGN):
            deliverable_id, kind = tenant.deliverable(
                campaign_id,
                theme,
                c,
                d,
                anchor + dt.timedelta(days=2 + (c + d) % 30),
                created + dt.timedelta(hours=d + 1),
            )
            deliverables.append((deliverable_id, campaign_id, kind, status == "ACTIVE"))

    active = [d for d in deliverables if d[3]]
    statuses = [s for s, n in ACTIVITY_STATUS_COUNTS.items() for _ in range(n)]
    rng.shuffle(statuses)
    started: list[Started] = []
    pending_index = 0
    people = tenant.people
    reviewers = (people[MemberRole.MARKETER], people[MemberRole.ADMIN], people[MemberRole.OWNER])
    epoch = anchor.timestamp()
    for index, status in enumerate(statuses):
        deliverable_id, campaign_id, kind, _ = rng.choice(
            active if status in IN_FLIGHT else deliverables
        )
        agent_id, model = tenant.agent_for(kind)
        activity_id = stable_id(SLUG, "activity", index)
        # Seconds before the anchor that the activity was created: in-flight work is
        # recent; an EXPIRED approval needs its 48 hours to have run out.
        if status in ("QUEUED", "RUNNING"):
            age = rng.uniform(3 * HOUR, 12 * HOUR)
        elif status in ("AWAITING_APPROVAL", "REVISING"):
            age = rng.uniform(4 * HOUR, 7 * DAY)
        elif status == "ESCALATED":
            age = rng.uniform(3 * DAY, 89 * DAY)
        else:
            age = rng.uniform(8 * HOUR, 89.5 * DAY)
        created = epoch - age
        dispatched = first_token = finished = None
        if status != "QUEUED":
            dispatched = created + rng.uniform(0.2, 3)
            first_token = dispatched + rng.uniform(0.4, 1.5)
            work_s = rng.uniform(5 * 60, 90 * 60) * (0.3 if status == "FAILED" else 1.0)
            finished = first_token + work_s
            started.append(Started(activity_id, agent_id, campaign_id, model, first_token, work_s))
        tenant.activity(
            activity_id,
            campaign_id,
            deliverable_id,
            kind,
            status,
            index,
            _at(created),
            _at(dispatched),
            _at(first_token),
            _at(finished) if status in TERMINAL else None,
        )
        approval_status = APPROVAL_FOR_ACTIVITY.get(status)
        if approval_status is None:
            continue
        assert finished is not None
        requested = finished + 60
        if approval_status == "PENDING":
            # Spread over the next ~2 to 5 days, so the queue's order is the expiry order.
            expires = epoch + 2 * DAY + pending_index * 250 + rng.uniform(0, 200)
            pending_index += 1
            resolved = resolver = None
        elif approval_status == "EXPIRED":
            expires = requested + 48 * HOUR
            resolved, resolver = expires, None
        else:
            expires = requested + 48 * HOUR
            resolved = requested + rng.uniform(10 * 60, 3 * HOUR)
            resolver = reviewers[index % len(reviewers)]
        tenant.approval(
            stable_id(SLUG, "approval", index),
            campaign_id,
            activity_id,
            kind,
            approval_status,
            _at(requested),
            _at(expires),
            _at(resolved),
            resolver,
            APPROVAL_COMMENTS.get(approval_status),
        )
    assert pending_index == ACTIVITY_STATUS_COUNTS["AWAITING_APPROVAL"]
    return tenant.rows, started


def llm_call_chunks(
    rng: random.Random, tenant_id: uuid.UUID, started: list[Started]
) -> Iterator[list[tuple[Any, ...]]]:
    """Exactly LLM_CALLS calls, spread over `started` in proportion to random weights."""
    weights = [rng.uniform(0.3, 1.7) * (s.work_s / (45 * 60)) for s in started]
    scale = LLM_CALLS / sum(weights)
    counts = [int(w * scale) for w in weights]
    for i in range(LLM_CALLS - sum(counts)):  # the rounding remainder, one each
        counts[i % len(counts)] += 1

    # IDs from a counter under a fixed prefix: unique, deterministic, and ascending in
    # insertion order, so the primary key grows at its right edge (uuid5 per row would
    # double the generation time).
    id_base = stable_id(SLUG, "llm_calls").int & ~((1 << 64) - 1)
    random_ = rng.random
    utc = dt.UTC
    from_ts = dt.datetime.fromtimestamp
    new_uuid = uuid.UUID
    serial = 0
    chunk: list[tuple[Any, ...]] = []
    for activity, count in zip(started, counts, strict=True):
        model = activity.model
        at, step = activity.first_token, activity.work_s / max(count, 1)
        for _ in range(count):
            # Mostly short agent turns: the 90-day token sums stay within the contract's
            # 32-bit Int (see the note on SpendSummary in loaders/spend.py).
            input_tokens = 200 + int(random_() * 2_000)
            output_tokens = 50 + int(random_() * 600)
            serial += 1
            chunk.append(
                llm_call_row(
                    new_uuid(int=id_base | serial),
                    tenant_id,
                    activity.activity_id,
                    activity.agent_id,
                    activity.campaign_id,
                    model,
                    input_tokens,
                    output_tokens,
                    400 + int(random_() * 8_600),
                    from_ts(at, utc),
                )
            )
            at += step * (0.5 + random_())
            if len(chunk) >= COPY_CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


@overload
def _at(epoch_s: float) -> dt.datetime: ...
@overload
def _at(epoch_s: None) -> None: ...
@overload
def _at(epoch_s: float | None) -> dt.datetime | None: ...


def _at(epoch_s: float | None) -> dt.datetime | None:
    return None if epoch_s is None else dt.datetime.fromtimestamp(epoch_s, dt.UTC)
