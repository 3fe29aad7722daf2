"""Spend answers are exact sums over the raw LLM calls, for any window.

The gateway answers spend from the hourly rollup plus raw rows at the window's ragged
edges; a client only sees the totals. Every answer here is compared with SQL run directly
over `llm_calls` in the test: Tenant.spend, Agent.spend, Campaign.spend, spendReport by
AGENT, MODEL, CAMPAIGN and DAY, mobileHome.spendThisMonthUsd, budgetUsedFraction and the
all-time costUsd of deliverables and activities.

Windows are drawn with a seeded random generator: inside one hour, ragged to the
microsecond, whole hours, whole UTC days, empty, beyond the data, the whole 90 days, exactly
on a call's own instant (half-open: `from` included, `to` excluded), and given in other UTC
offsets. The seeded tenants are only read; the tenants of our own (fresh uuid4 IDs) put
calls on hour and day boundaries, make ties, and get new calls after their rollups were
built, which are then rebuilt with `rebuild_rollups` (there is no live per-call rollup
write path yet) - answers must keep matching the raw rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from domain.ids import to_global_id
from switchboard.devdata.seed import rebuild_rollups
from switchboard.settings import Settings
from tests.conftest import add_marketer, drop_tenant

UTC = dt.UTC
US = dt.timedelta(microseconds=1)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
DECIMAL_TEXT = re.compile(r"\d+(\.\d+)?")
MODELS = ["gpt-4.1", "gpt-4.1-mini", "claude-sonnet-4", "claude-haiku-4", "llama-3.1-70b"]
OFFSETS = [
    dt.timedelta(0),
    dt.timedelta(hours=5, minutes=30),
    dt.timedelta(hours=-8),
    dt.timedelta(hours=13, minutes=45),
]

SPEND = "{ totalUsd inputTokens outputTokens callCount }"
BUCKET = "{ key label totalUsd inputTokens outputTokens callCount }"
WINDOW_QUERY = f"""
query($from: DateTime!, $to: DateTime!) {{
  tenant {{
    spend(from: $from, to: $to) {SPEND}
    byAgent: spendReport(from: $from, to: $to, groupBy: AGENT) {BUCKET}
    byModel: spendReport(from: $from, to: $to, groupBy: MODEL) {BUCKET}
    byCampaign: spendReport(from: $from, to: $to, groupBy: CAMPAIGN) {BUCKET}
    byDay: spendReport(from: $from, to: $to, groupBy: DAY) {BUCKET}
    agents {{ id spend(from: $from, to: $to) {SPEND} }}
    campaigns(first: 100) {{ edges {{ node {{ id spend(from: $from, to: $to) {SPEND} }} }} }}
  }}
}}
"""
COSTS_QUERY = """
query($id: ID!) {
  node(id: $id) {
    ... on Campaign {
      budgetCapUsd
      budgetUsedFraction
      deliverables(first: 100) {
        edges { node { id costUsd activities(first: 100) { edges { node { id costUsd } } } } }
      }
    }
  }
}
"""


# What SQL says


def _role_label(role: str) -> str:
    return role.replace("_", " ").capitalize()


def _summary(usd: Decimal | None, input_tokens: int, output_tokens: int, calls: int) -> dict:
    return {
        "totalUsd": usd if usd is not None else Decimal(0),
        "inputTokens": int(input_tokens),
        "outputTokens": int(output_tokens),
        "callCount": int(calls),
    }


SUMS = (
    "coalesce(sum(c.cost_usd), 0), coalesce(sum(c.input_tokens), 0), "
    "coalesce(sum(c.output_tokens), 0), count(*)"
)
IN_WINDOW = "c.tenant_id = $1 AND c.created_at >= $2 AND c.created_at < $3"


async def expected_window(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """The window's answers computed over the raw llm_calls rows."""
    args = (tenant_id, start, end)
    total = await conn.fetchrow(f"SELECT {SUMS} FROM llm_calls c WHERE {IN_WINDOW}", *args)
    by_agent = [
        {"key": to_global_id("Agent", r[0]), "label": _role_label(r[1]), **_summary(*r[2:])}
        for r in await conn.fetch(
            f"SELECT c.agent_id, a.role, {SUMS} FROM llm_calls c "
            f"JOIN agents a ON a.id = c.agent_id WHERE {IN_WINDOW} GROUP BY 1, 2",
            *args,
        )
    ]
    by_model = [
        {"key": r[0], "label": r[0], **_summary(*r[1:])}
        for r in await conn.fetch(
            f"SELECT c.model, {SUMS} FROM llm_calls c WHERE {IN_WINDOW} GROUP BY 1", *args
        )
    ]
    by_campaign = [
        {"key": to_global_id("Campaign", r[0]), "label": r[1], **_summary(*r[2:])}
        for r in await conn.fetch(
            f"SELECT c.campaign_id, m.name, {SUMS} FROM llm_calls c "
            f"JOIN campaigns m ON m.id = c.campaign_id WHERE {IN_WINDOW} GROUP BY 1, 2",
            *args,
        )
    ]
    by_day = [
        {"key": r[0].isoformat(), "label": r[0].isoformat(), **_summary(*r[1:])}
        for r in await conn.fetch(
            f"SELECT (c.created_at AT TIME ZONE 'UTC')::date, {SUMS} FROM llm_calls c "
            f"WHERE {IN_WINDOW} GROUP BY 1",
            *args,
        )
    ]
    agents = {
        to_global_id("Agent", r[0]): _summary(*r[1:])
        for r in await conn.fetch(
            f"SELECT a.id, {SUMS.replace('count(*)', 'count(c.id)')} FROM agents a "
            "LEFT JOIN llm_calls c ON c.agent_id = a.id AND c.created_at >= $2 "
            "AND c.created_at < $3 WHERE a.tenant_id = $1 GROUP BY 1",
            *args,
        )
    }
    campaigns = {
        to_global_id("Campaign", r[0]): _summary(*r[1:])
        for r in await conn.fetch(
            f"SELECT m.id, {SUMS.replace('count(*)', 'count(c.id)')} FROM campaigns m "
            "LEFT JOIN llm_calls c ON c.campaign_id = m.id AND c.created_at >= $2 "
            "AND c.created_at < $3 WHERE m.tenant_id = $1 GROUP BY 1",
            *args,
        )
    }

    def largest_first(buckets: list[dict]) -> list[dict]:
        return sorted(buckets, key=lambda b: (-b["totalUsd"], b["key"]))

    return {
        "spend": _summary(*total),
        "byAgent": largest_first(by_agent),
        "byModel": largest_first(by_model),
        "byCampaign": largest_first(by_campaign),
        "byDay": sorted(by_day, key=lambda b: b["key"]),
        "agents": agents,
        "campaigns": campaigns,
    }


def _money(text: Any) -> Decimal:
    """A Decimal as the API shows it: a plain decimal string, never a float or exponent."""
    assert isinstance(text, str) and DECIMAL_TEXT.fullmatch(text), text
    return Decimal(text)


def _parsed(summary: dict[str, Any]) -> dict[str, Any]:
    parsed = dict(summary)
    parsed["totalUsd"] = _money(summary["totalUsd"])
    for name in ("inputTokens", "outputTokens", "callCount"):
        if name in parsed:
            assert isinstance(parsed[name], int) and not isinstance(parsed[name], bool)
    return parsed


async def answered_window(
    gql: Any, token: str, start: dt.datetime | str, end: dt.datetime | str
) -> dict[str, Any]:
    body = await _ask_window(gql, token, start, end)
    assert "errors" not in body, body
    return _answers(body)


async def _ask_window(
    gql: Any, token: str, start: dt.datetime | str, end: dt.datetime | str
) -> dict[str, Any]:
    as_text = [_iso(t) if isinstance(t, dt.datetime) else t for t in (start, end)]
    response = await gql(WINDOW_QUERY, {"from": as_text[0], "to": as_text[1]}, token)
    body = response.json()
    assert response.status_code == 200, body
    return body


def _answers(body: dict[str, Any]) -> dict[str, Any]:
    tenant = body["data"]["tenant"]
    return {
        "spend": _parsed(tenant["spend"]),
        **{
            name: [_parsed(bucket) for bucket in tenant[name]]
            for name in ("byAgent", "byModel", "byCampaign", "byDay")
        },
        "agents": {agent["id"]: _parsed(agent["spend"]) for agent in tenant["agents"]},
        "campaigns": {
            edge["node"]["id"]: _parsed(edge["node"]["spend"])
            for edge in tenant["campaigns"]["edges"]
        },
    }


def _iso(moment: dt.datetime) -> str:
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


async def assert_window_matches(
    gql: Any,
    token: str,
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    start: dt.datetime,
    end: dt.datetime,
) -> dict[str, Any]:
    expected = await expected_window(conn, tenant_id, start, end)
    answered = await answered_window(gql, token, start, end)
    label = f"[{_iso(start)}, {_iso(end)})"
    for part in ("spend", "byAgent", "byModel", "byCampaign", "byDay", "agents", "campaigns"):
        assert answered[part] == expected[part], (label, part)
    return expected


# Windows


def random_windows(
    rng: random.Random, lo: dt.datetime, hi: dt.datetime, instants: list[dt.datetime]
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Windows of every shape over the data's span [lo, hi]; `instants`: calls' own times."""
    span = (hi - lo).total_seconds()

    def moment() -> dt.datetime:
        return lo + dt.timedelta(seconds=rng.uniform(0, span), microseconds=rng.randrange(10**6))

    def hour_of(at: dt.datetime) -> dt.datetime:
        return at.replace(minute=0, second=0, microsecond=0)

    def offset(at: dt.datetime) -> dt.datetime:
        return at.astimezone(dt.timezone(rng.choice(OFFSETS)))

    windows: list[tuple[dt.datetime, dt.datetime]] = []
    for _ in range(6):  # inside one hour (a busy one: around a call)
        start = hour_of(rng.choice(instants)) + dt.timedelta(seconds=rng.uniform(0, 1800))
        end = start + dt.timedelta(seconds=rng.uniform(1, 1799))
        windows.append((start, end))
    for _ in range(8):  # ragged minutes, seconds and microseconds, hours to weeks long
        start = moment()
        windows.append((start, start + dt.timedelta(seconds=rng.uniform(60, 21 * 86400))))
    for _ in range(6):  # whole hours
        start = hour_of(moment())
        windows.append((start, start + rng.randint(1, 24 * 20) * HOUR))
    for _ in range(3):  # whole UTC days
        start = moment().replace(hour=0, minute=0, second=0, microsecond=0)
        windows.append((start, start + rng.randint(1, 30) * DAY))
    for _ in range(4):  # ragged start, whole-hour end and the other way round
        start, end = moment(), hour_of(moment())
        windows.append((min(start, end), max(start, end)))
    for _ in range(6):  # exactly on calls' own instants: `from` in, `to` out
        a, b = sorted(rng.sample(instants, 2))
        windows.append((a, b))
        windows.append((a, a + US))
        windows.append((b - US, b))
    for _ in range(3):  # empty: from == to, on a call, ragged and on an hour
        at, ragged, hour = rng.choice(instants), moment(), hour_of(moment())
        windows += [(at, at), (ragged, ragged), (hour, hour)]
    far_past = dt.datetime(2001, 1, 1, tzinfo=UTC)
    windows.append((far_past, far_past + 30 * DAY))  # no calls at all
    windows.append((hi + DAY, hi + 40 * DAY))
    # The whole 90 days: aligned, ragged, and with room on both sides.
    windows.append((hour_of(lo), hour_of(hi) + HOUR))
    windows.append((lo, hi + US))
    windows.append((lo - 3 * DAY, hi + 3 * DAY))
    windows.append((lo.replace(hour=0, minute=0, second=0, microsecond=0), hi + 1 * DAY))
    # A few given in other UTC offsets: the same instants.
    return [(offset(s), offset(e)) if n % 5 == 0 else (s, e) for n, (s, e) in enumerate(windows)]


async def _span(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[dt.datetime]:
    return [
        r[0]
        for r in await conn.fetch(
            "SELECT created_at FROM llm_calls WHERE tenant_id = $1 ORDER BY created_at", tenant_id
        )
    ]


# Tenants of our own


@dataclass
class OwnTenant:
    conn: asyncpg.Connection
    id: uuid.UUID
    slug: str
    token: str
    agents: dict[str, uuid.UUID] = field(default_factory=dict)
    campaigns: list[uuid.UUID] = field(default_factory=list)
    # (activity, deliverable, campaign, agent)
    activities: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]] = field(
        default_factory=list
    )

    async def add_call(
        self,
        at: dt.datetime,
        cost: Decimal,
        activity: int = 0,
        model: str = "gpt-4.1",
        tokens: tuple[int, int] = (1000, 100),
        conn: asyncpg.Connection | None = None,
    ) -> uuid.UUID:
        activity_id, _, campaign_id, agent_id = self.activities[activity]
        call_id = uuid.uuid4()
        await (conn or self.conn).execute(
            "INSERT INTO llm_calls (id, tenant_id, activity_id, agent_id, campaign_id, provider, "
            "model, input_tokens, output_tokens, cost_usd, latency_ms, created_at) "
            "VALUES ($1, $2, $3, $4, $5, 'test', $6, $7, $8, $9, 100, $10)",
            call_id,
            self.id,
            activity_id,
            agent_id,
            campaign_id,
            model,
            tokens[0],
            tokens[1],
            cost,
            at,
        )
        return call_id


async def create_tenant(
    conn: asyncpg.Connection,
    settings: Settings,
    caps: list[Decimal | None],
    roles: tuple[str, ...] = ("COPYWRITER", "SEO_SPECIALIST", "DATA_ANALYST"),
) -> OwnTenant:
    """A tenant with those agents, one campaign per cap (two deliverables, two activities
    each, agents taken in turn) and a marketer whose token it carries."""
    tenant_id = uuid.uuid4()
    slug = f"spend-{tenant_id.hex[:12]}"
    await conn.execute(
        "INSERT INTO tenants (id, slug, name, monthly_spend_cap_usd) VALUES ($1, $2, $3, 100)",
        tenant_id,
        slug,
        f"Spend test {slug}",
    )
    token = await add_marketer(conn, settings, tenant_id, slug, "Spend Checker")
    tenant = OwnTenant(conn=conn, id=tenant_id, slug=slug, token=token)
    for role in roles:
        tenant.agents[role] = uuid.uuid4()
        await conn.execute(
            "INSERT INTO agents (id, tenant_id, role, model, concurrency) "
            "VALUES ($1, $2, $3, 'gpt-4.1', 2)",
            tenant.agents[role],
            tenant_id,
            role,
        )
    agent_ids = list(tenant.agents.values())
    for n, cap in enumerate(caps):
        campaign_id = uuid.uuid4()
        tenant.campaigns.append(campaign_id)
        await conn.execute(
            "INSERT INTO campaigns (id, tenant_id, name, status, budget_cap_usd) "
            "VALUES ($1, $2, $3, 'ACTIVE', $4)",
            campaign_id,
            tenant_id,
            f"Campaign {n} of {slug}",
            cap,
        )
        for d in range(2):
            deliverable_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO deliverables (id, tenant_id, campaign_id, title, kind) "
                "VALUES ($1, $2, $3, $4, 'EMAIL')",
                deliverable_id,
                tenant_id,
                campaign_id,
                f"Deliverable {d}",
            )
            for _ in range(2):
                activity_id = uuid.uuid4()
                agent_id = agent_ids[len(tenant.activities) % len(agent_ids)]
                await conn.execute(
                    "INSERT INTO activities (id, tenant_id, campaign_id, deliverable_id, "
                    "agent_id, status, wake_reason) "
                    "VALUES ($1, $2, $3, $4, $5, 'RUNNING', 'MANUAL')",
                    activity_id,
                    tenant_id,
                    campaign_id,
                    deliverable_id,
                    agent_id,
                )
                tenant.activities.append((activity_id, deliverable_id, campaign_id, agent_id))
    return tenant


@pytest.fixture(scope="module")
async def rebuild(servers: Any) -> AsyncIterator[Any]:
    """rebuild(tenant_id): the project's own rollup rebuild, in one transaction."""
    engine = create_async_engine(servers.database_url)

    async def run(tenant_id: uuid.UUID) -> None:
        async with engine.begin() as conn:
            await rebuild_rollups(conn, tenant_id)

    yield run
    await engine.dispose()


def _random_cost(rng: random.Random) -> Decimal:
    """Micro-dollar amounts from 0.000001 to a few dollars, any digits."""
    return Decimal(rng.choice([1, rng.randrange(1, 10**4), rng.randrange(1, 5 * 10**6)])) / 10**6


async def add_random_calls(
    tenant: OwnTenant,
    rng: random.Random,
    count: int,
    lo: dt.datetime,
    hi: dt.datetime,
    conn: asyncpg.Connection | None = None,
) -> None:
    span = (hi - lo).total_seconds()
    for _ in range(count):
        at = lo + dt.timedelta(seconds=rng.uniform(0, span), microseconds=rng.randrange(10**6))
        await tenant.add_call(
            at,
            _random_cost(rng),
            activity=rng.randrange(len(tenant.activities)),
            model=rng.choice(MODELS),
            tokens=(rng.randrange(0, 80_000), rng.randrange(0, 9_000)),
            conn=conn,
        )


def boundary_instants(day: dt.datetime) -> list[dt.datetime]:
    """Instants on and next to hour and UTC-day boundaries around midnight starting `day`."""
    midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
    return [
        midnight - US,
        midnight,
        midnight + US,
        midnight + HOUR - US,
        midnight + HOUR,
        midnight + 10 * HOUR,
        midnight + 10 * HOUR + dt.timedelta(minutes=30),
        midnight + DAY - US,
        midnight + DAY,
    ]


@pytest.fixture(scope="module")
async def own(db_conn: asyncpg.Connection, settings: Settings, rebuild: Any) -> AsyncIterator[Any]:
    """A tenant with 90 days of random calls, calls on hour and day boundaries and in this
    month's first and last microsecond, its rollups rebuilt."""
    tenant = await create_tenant(
        db_conn, settings, [None, Decimal("25.00"), Decimal("0.75"), Decimal("1000000")]
    )
    rng = random.Random(20261122)
    now = dt.datetime.now(UTC)
    await add_random_calls(tenant, rng, 400, now - 90 * DAY, now)
    for at in boundary_instants(now - 40 * DAY) + boundary_instants(now - 3 * DAY):
        await tenant.add_call(at, Decimal("0.000001"), activity=rng.randrange(8))
        await tenant.add_call(at, Decimal("1.234567"), activity=rng.randrange(8), model="odd")
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (month + 32 * DAY).replace(day=1)
    for at in (month - US, month, month + US, following - US, following):
        await tenant.add_call(at, Decimal("0.010001"), activity=3)
    await rebuild(tenant.id)
    yield tenant
    await drop_tenant(db_conn, tenant.id)


async def _tenant_token_and_id(
    slug: str, token: Any, own: OwnTenant, conn: asyncpg.Connection
) -> tuple[str, uuid.UUID]:
    if slug == "own":
        return own.token, own.id
    return token(slug), await conn.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)


TENANTS = ["acme", "globex", "initech", "own"]


# Windows


@pytest.mark.parametrize("slug", TENANTS)
async def test_every_spend_answer_is_the_exact_raw_sum(
    gql: Any, token: Any, db_conn: asyncpg.Connection, own: OwnTenant, slug: str
) -> None:
    tenant_token, tenant_id = await _tenant_token_and_id(slug, token, own, db_conn)
    instants = await _span(db_conn, tenant_id)
    assert len(instants) > 100
    rng = random.Random(f"spend-windows:{slug}")
    windows = random_windows(rng, instants[0], instants[-1], instants)
    nonempty = 0
    for start, end in windows:
        expected = await assert_window_matches(gql, tenant_token, db_conn, tenant_id, start, end)
        nonempty += expected["spend"]["callCount"] > 0
    assert nonempty > len(windows) // 2  # the windows really hold calls


async def test_boundary_calls_count_once_in_half_open_windows(
    gql: Any, db_conn: asyncpg.Connection, own: OwnTenant
) -> None:
    """Calls exactly on hour and UTC-day boundaries belong to the window that starts there."""
    now = dt.datetime.now(UTC)
    instants = boundary_instants(now - 40 * DAY)
    for start in instants:
        for end in instants:
            if start <= end:
                await assert_window_matches(gql, own.token, db_conn, own.id, start, end)


async def test_windows_at_the_ends_of_time(
    gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    """All of time is every call; a window inside the very last hour is simply empty; an
    instant beyond what UTC time holds (year 0 or 10000 in UTC) is either refused as
    BAD_USER_INPUT or answered as the window cut to what exists - never a server error."""
    tenant_id = await db_conn.fetchval("SELECT id FROM tenants WHERE slug = 'acme'")
    first, last = dt.datetime.min.replace(tzinfo=UTC), dt.datetime.max.replace(tzinfo=UTC)
    expected = await assert_window_matches(gql, token("acme"), db_conn, tenant_id, first, last)
    assert expected["spend"]["callCount"] > 0
    for start, end in [(last - 30 * MINUTE, last - 15 * MINUTE), (last - 30 * MINUTE, last)]:
        expected = await assert_window_matches(gql, token("acme"), db_conn, tenant_id, start, end)
        assert expected["spend"]["callCount"] == 0
    october = dt.datetime(2026, 10, 1, tzinfo=UTC)
    for start, end, cut in [
        ("0001-01-01T00:00:00+14:00", "2026-10-01T00:00:00Z", (first, october)),
        ("2026-10-01T00:00:00Z", "9999-12-31T23:59:59-05:00", (october, last)),
    ]:
        body = await _ask_window(gql, token("acme"), start, end)
        if "errors" in body:
            assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}, body
        else:
            expected = await expected_window(db_conn, tenant_id, *cut)
            assert _answers(body) == expected, (start, end)


async def test_to_before_from_is_bad_user_input(gql: Any, token: Any) -> None:
    response = await gql(
        WINDOW_QUERY, {"from": "2026-10-02T00:00:00Z", "to": "2026-10-01T00:00:00Z"}, token("acme")
    )
    body = response.json()
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}


# Report order


async def test_report_ties_are_ordered_by_key(
    gql: Any, db_conn: asyncpg.Connection, settings: Settings, rebuild: Any
) -> None:
    """Equal totals: the bucket with the smaller key first. DAY: oldest first, UTC days."""
    tenant = await create_tenant(
        db_conn,
        settings,
        [None, None, None],
        roles=("COPYWRITER", "SEO_SPECIALIST", "PAID_ADS_MANAGER"),
    )
    try:
        # Activity n is in campaign n // 4 and of agent n % 3.
        day = dt.datetime(2026, 10, 5, 23, 30, tzinfo=UTC)
        calls = [
            (0, "zeta", "1.000000", day),  # campaign 0, agent 0
            (1, "alpha", "1.000000", day + HOUR),  # campaign 0, agent 1
            (2, "mid", "1.000000", day + 2 * HOUR),  # campaign 0, agent 2
            (6, "mid", "1.000000", day - DAY),  # campaign 1, agent 0
            (4, "beta", "1.000000", day + DAY),  # campaign 1, agent 1
            (5, "beta", "1.000000", day + 2 * DAY),  # campaign 1, agent 2
            (9, "beta", "2.000000", day + 5 * DAY),  # campaign 2, agent 0
            (10, "zeta", "0.500000", day + 5 * DAY + HOUR),  # campaign 2, agent 1
            (8, "alpha", "0.500000", day + 5 * DAY + 30 * MINUTE),  # campaign 2, agent 2
        ]
        for activity, model, cost, at in calls:
            await tenant.add_call(at, Decimal(cost), activity=activity, model=model)
        await rebuild(tenant.id)
        start, end = day - 3 * DAY, day + 10 * DAY
        expected = await assert_window_matches(gql, tenant.token, db_conn, tenant.id, start, end)
        # The ties are really there.
        models = [(b["key"], b["totalUsd"]) for b in expected["byModel"]]
        assert models == [
            ("beta", Decimal(4)),
            ("mid", Decimal(2)),
            ("alpha", Decimal("1.5")),
            ("zeta", Decimal("1.5")),
        ]
        assert [b["totalUsd"] for b in expected["byCampaign"]] == [Decimal(3)] * 3
        keys = [b["key"] for b in expected["byCampaign"]]
        assert keys == sorted(keys)
        agents = expected["byAgent"]
        assert [b["totalUsd"] for b in agents] == [Decimal(4), Decimal("2.5"), Decimal("2.5")]
        assert agents[1]["key"] < agents[2]["key"]
        assert [b["key"] for b in expected["byDay"]] == [
            "2026-10-04",
            "2026-10-05",
            "2026-10-06",
            "2026-10-07",
            "2026-10-10",
            "2026-10-11",  # 00:00:00 exactly
        ]
    finally:
        await drop_tenant(db_conn, tenant.id)


# All-time costs


async def _assert_all_time_costs(gql: Any, token: str, conn: asyncpg.Connection, tid: Any) -> int:
    """budgetUsedFraction and every deliverable's and activity's costUsd; returns checks."""
    spent = {
        r[0]: r[1]
        for r in await conn.fetch(
            "SELECT campaign_id, sum(cost_usd) FROM llm_calls WHERE tenant_id = $1 GROUP BY 1",
            tid,
        )
    }
    by_activity = {
        r[0]: r[1]
        for r in await conn.fetch(
            "SELECT activity_id, sum(cost_usd) FROM llm_calls WHERE tenant_id = $1 GROUP BY 1",
            tid,
        )
    }
    by_deliverable = {
        r[0]: r[1]
        for r in await conn.fetch(
            "SELECT a.deliverable_id, sum(c.cost_usd) FROM llm_calls c "
            "JOIN activities a ON a.id = c.activity_id WHERE c.tenant_id = $1 GROUP BY 1",
            tid,
        )
    }
    campaigns = await conn.fetch(
        "SELECT id, budget_cap_usd FROM campaigns WHERE tenant_id = $1", tid
    )
    checks = 0
    for campaign_id, cap in campaigns:
        response = await gql(COSTS_QUERY, {"id": to_global_id("Campaign", campaign_id)}, token)
        body = response.json()
        assert "errors" not in body, body
        node = body["data"]["node"]
        used = spent.get(campaign_id, Decimal(0))
        if cap is None:
            assert node["budgetCapUsd"] is None and node["budgetUsedFraction"] is None
        else:
            assert _money(node["budgetCapUsd"]) == cap
            assert math.isclose(node["budgetUsedFraction"], used / cap, rel_tol=1e-12), (
                campaign_id,
                node["budgetUsedFraction"],
                used,
                cap,
            )
        for edge in node["deliverables"]["edges"]:
            deliverable = edge["node"]
            deliverable_id = uuid.UUID(hex=deliverable["id"].partition("_")[2])
            expected = by_deliverable.get(deliverable_id, Decimal(0))
            assert _money(deliverable["costUsd"]) == expected, deliverable["id"]
            for activity_edge in deliverable["activities"]["edges"]:
                activity = activity_edge["node"]
                activity_id = uuid.UUID(hex=activity["id"].partition("_")[2])
                expected = by_activity.get(activity_id, Decimal(0))
                assert _money(activity["costUsd"]) == expected, activity["id"]
                checks += 1
    return checks


@pytest.mark.parametrize("slug", TENANTS)
async def test_budget_used_fraction_and_costs_are_all_time_raw_sums(
    gql: Any, token: Any, db_conn: asyncpg.Connection, own: OwnTenant, slug: str
) -> None:
    tenant_token, tenant_id = await _tenant_token_and_id(slug, token, own, db_conn)
    assert await _assert_all_time_costs(gql, tenant_token, db_conn, tenant_id) > 0


# This month


async def _month_spend(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> Decimal:
    return await conn.fetchval(
        "SELECT coalesce(sum(cost_usd), 0) FROM llm_calls WHERE tenant_id = $1 "
        "AND created_at >= date_trunc('month', now(), 'UTC') "
        "AND created_at < date_trunc('month', now(), 'UTC') + interval '1 month'",
        tenant_id,
    )


@pytest.mark.parametrize("slug", TENANTS)
async def test_mobile_home_spend_this_month_is_the_raw_sum_of_the_utc_month(
    gql: Any, token: Any, db_conn: asyncpg.Connection, own: OwnTenant, slug: str
) -> None:
    tenant_token, tenant_id = await _tenant_token_and_id(slug, token, own, db_conn)
    response = await gql("{ mobileHome { spendThisMonthUsd } }", None, tenant_token)
    body = response.json()
    assert "errors" not in body, body
    answered = _money(body["data"]["mobileHome"]["spendThisMonthUsd"])
    assert answered == await _month_spend(db_conn, tenant_id)
    if slug == "own":
        # The month's first and last microsecond count; the ones just outside do not.
        assert answered >= Decimal("0.030003")


# New calls


async def test_answers_follow_new_calls_after_a_rebuild(
    gql: Any, db_conn: asyncpg.Connection, settings: Settings, rebuild: Any
) -> None:
    """New calls land in hours already rolled up, on boundaries, for a new model and on a
    campaign without calls so far; after the rebuild every answer matches the raw rows."""
    tenant = await create_tenant(db_conn, settings, [Decimal("10.00"), Decimal("3.00"), None])
    try:
        rng = random.Random("spend-new-calls")
        now = dt.datetime.now(UTC)
        lo = now - 30 * DAY
        for n in range(60):
            await tenant.add_call(
                lo + n * 12 * HOUR + dt.timedelta(seconds=rng.uniform(0, 3600)),
                _random_cost(rng),
                activity=n % 4,  # campaign 0 only
                model=rng.choice(MODELS[:2]),
            )
        await rebuild(tenant.id)
        instants = await _span(db_conn, tenant.id)
        for start, end in random_windows(rng, instants[0], instants[-1], instants)[::3]:
            await assert_window_matches(gql, tenant.token, db_conn, tenant.id, start, end)

        # More calls: into the same hours, exactly on their boundaries, a new model, and
        # the other campaigns.
        for at in instants[::5]:
            hour = at.replace(minute=0, second=0, microsecond=0)
            await tenant.add_call(at, Decimal("0.333333"), activity=rng.randrange(12))
            await tenant.add_call(hour, Decimal("0.000007"), activity=5, model="new-model")
            await tenant.add_call(hour - US, Decimal("2.000001"), activity=9)
        await rebuild(tenant.id)
        instants = await _span(db_conn, tenant.id)
        # Windows not asked before (an answer may be cached for up to a second).
        rng = random.Random("spend-new-calls-after")
        for start, end in random_windows(rng, instants[0], instants[-1], instants):
            await assert_window_matches(gql, tenant.token, db_conn, tenant.id, start, end)
        assert await _assert_all_time_costs(gql, tenant.token, db_conn, tenant.id) == 12
    finally:
        await drop_tenant(db_conn, tenant.id)


async def test_concurrent_inserts_then_rebuild_match_the_raw_rows(
    gql: Any, db_conn: asyncpg.Connection, servers: Any, settings: Settings, rebuild: Any
) -> None:
    """Several connections insert calls at once (into the same hours), then one rebuild."""
    tenant = await create_tenant(db_conn, settings, [Decimal("50.00"), Decimal("20.00")])
    dsn = servers.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connections = [await asyncpg.connect(dsn) for _ in range(4)]
    try:
        now = dt.datetime.now(UTC)
        lo, hi = now - 10 * DAY, now - 9 * DAY  # a busy day: many calls per hour

        async def writer(n: int, conn: asyncpg.Connection) -> None:
            rng = random.Random(f"writer-{n}")
            for _ in range(3):
                async with conn.transaction():
                    await add_random_calls(tenant, rng, 20, lo, hi, conn=conn)

        await asyncio.gather(*(writer(n, c) for n, c in enumerate(connections)))
        await rebuild(tenant.id)
        assert (
            await db_conn.fetchval("SELECT count(*) FROM llm_calls WHERE tenant_id = $1", tenant.id)
            == 4 * 3 * 20
        )
        instants = await _span(db_conn, tenant.id)
        rng = random.Random("spend-concurrent")
        for start, end in random_windows(rng, instants[0], instants[-1], instants):
            await assert_window_matches(gql, tenant.token, db_conn, tenant.id, start, end)
        assert await _assert_all_time_costs(gql, tenant.token, db_conn, tenant.id) == 8
        response = await gql("{ mobileHome { spendThisMonthUsd } }", None, tenant.token)
        answered = _money(response.json()["data"]["mobileHome"]["spendThisMonthUsd"])
        assert answered == await _month_spend(db_conn, tenant.id)
    finally:
        for conn in connections:
            await conn.close()
        await drop_tenant(db_conn, tenant.id)
