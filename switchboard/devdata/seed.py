"""Demo data: two client tenants with a little of everything, the same on every run.

`seed_demo` writes the tenants `acme` and `globex`: four users each (owner, admin, marketer,
viewer), one agent per role, campaigns in every status with deliverables, activities in
every status, pending approvals of every risk level and LLM calls over the last 90 days.
IDs, names and amounts are fixed; times are offsets from the start of the seeding day
(UTC), so the data looks the same whenever it is seeded. `scale` multiplies the work per
tenant (the tests use it for a larger tenant).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.agents import DEFAULT_CONCURRENCY, DEFAULT_MODEL, call_cost
from domain.enums import AgentRole, MemberRole
from domain.runs import KIND_RISK
from domain.store.rollups import REBUILD_SQL
from switchboard.devdata.skill_catalogue import SKILLS

NAMESPACE = uuid.UUID("6f1c8f2e-3d4b-4a5c-9e7f-0a1b2c3d4e5f")

DEMO_TENANTS = {
    "acme": ("Acme Outdoor Co.", Decimal("400.00")),
    "globex": ("Globex Corporation", Decimal("250.00")),
}

PEOPLE = {
    MemberRole.OWNER: ("owner", "Olivia Owens"),
    MemberRole.ADMIN: ("admin", "Adam Alvarez"),
    MemberRole.MARKETER: ("marketer", "Maya Marsh"),
    MemberRole.VIEWER: ("viewer", "Victor Vale"),
}

CAMPAIGN_THEMES = [
    ("Spring Trail Launch", "Launch the new trail-running line to existing customers."),
    ("Holiday Gift Guide", "Drive December revenue with curated gift bundles."),
    ("Newsletter Revamp", "Lift newsletter click-through above 4%."),
    ("Backcountry SEO Push", "Rank on page one for ten backcountry gear queries."),
    ("Brand Awareness Q3", "Grow branded search volume by 20%."),
    ("Loyalty Relaunch", "Re-engage lapsed loyalty members."),
    ("Winter Clearance", "Clear last season's inventory at healthy margins."),
]
CAMPAIGN_STATUSES = ["ACTIVE", "DRAFT", "ACTIVE", "PAUSED", "ACTIVE", "COMPLETED", "ARCHIVED"]

KIND_ROLE = {
    "BLOG_POST": AgentRole.COPYWRITER,
    "SOCIAL_POST": AgentRole.SOCIAL_MEDIA_MANAGER,
    "AD_SET": AgentRole.PAID_ADS_MANAGER,
    "SEO_AUDIT": AgentRole.SEO_SPECIALIST,
    "EMAIL": AgentRole.COPYWRITER,
    "REPORT": AgentRole.DATA_ANALYST,
}
KINDS = list(KIND_ROLE)
DELIVERABLE_STATUSES = ["IN_REVIEW", "IN_PROGRESS", "PLANNED", "APPROVED", "PUBLISHED", "CANCELLED"]
ACTIVITY_STATUSES = [
    "AWAITING_APPROVAL",
    "COMPLETED",
    "RUNNING",
    "AWAITING_APPROVAL",
    "QUEUED",
    "REVISING",
    "FAILED",
    "AWAITING_APPROVAL",
    "ESCALATED",
    "CANCELLED",
    "COMPLETED",
]
APPROVAL_FOR_ACTIVITY = {
    "AWAITING_APPROVAL": "PENDING",
    "COMPLETED": "APPROVED",
    "REVISING": "REVISION_REQUESTED",
    "CANCELLED": "REJECTED",
    "ESCALATED": "EXPIRED",
}
WAKE_REASONS = ["CAMPAIGN_SUBMITTED", "MANUAL", "SCHEDULED", "REVISION_REQUESTED", "RETRY"]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "ESCALATED"}


def stable_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, ":".join(str(p) for p in parts))


@dataclass
class Rows:
    """Rows per table, in insertion order, as tuples matching `COLUMNS`."""

    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.tables.setdefault(table, []).append(row)


COLUMNS = {
    "tenants": ("id", "slug", "name", "monthly_spend_cap_usd", "created_at"),
    "users": ("id", "email", "display_name", "created_at"),
    "memberships": ("tenant_id", "user_id", "role", "created_at"),
    "agents": (
        "id",
        "tenant_id",
        "role",
        "status",
        "model",
        "concurrency",
        "max_cost_usd_per_activity",
        "max_turns_per_run",
        "created_at",
    ),
    "campaigns": (
        "id",
        "tenant_id",
        "name",
        "goal",
        "status",
        "budget_cap_usd",
        "starts_on",
        "ends_on",
        "created_at",
        "updated_at",
    ),
    "deliverables": (
        "id",
        "tenant_id",
        "campaign_id",
        "title",
        "kind",
        "status",
        "due_at",
        "created_at",
    ),
    "activities": (
        "id",
        "tenant_id",
        "campaign_id",
        "deliverable_id",
        "agent_id",
        "status",
        "wake_reason",
        "priority",
        "instructions",
        "output",
        "failure_reason",
        "created_at",
        "dispatched_at",
        "first_token_at",
        "completed_at",
    ),
    "approvals": (
        "id",
        "tenant_id",
        "campaign_id",
        "activity_id",
        "status",
        "risk_level",
        "requested_at",
        "expires_at",
        "resolved_at",
        "resolved_by",
        "comment",
    ),
    "llm_calls": (
        "id",
        "tenant_id",
        "activity_id",
        "agent_id",
        "campaign_id",
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "latency_ms",
        "created_at",
    ),
    "skills": (
        "id",
        "tenant_id",
        "name",
        "role",
        "summary",
        "content",
        "created_at",
        "updated_at",
    ),
    "preferences": ("user_id", "key", "value", "updated_at"),
}


def seeding_anchor(now: dt.datetime | None = None) -> dt.datetime:
    """The start of the seeding day, UTC: every demo time is an offset from it."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def demo_rows(
    slug: str, name: str, cap: Decimal | None, anchor: dt.datetime, scale: int = 1
) -> Rows:
    rows = Rows()
    rng = random.Random(f"switchboard-demo:{slug}:{scale}")
    tenant_id = stable_id(slug, "tenant")
    started = anchor - dt.timedelta(days=120)
    rows.add("tenants", (tenant_id, slug, name, cap, started))

    people: dict[MemberRole, uuid.UUID] = {}
    for role, (local, display) in PEOPLE.items():
        user_id = stable_id("user", f"{local}@{slug}.example")
        people[role] = user_id
        rows.add("users", (user_id, f"{local}@{slug}.example", display, started))
        rows.add("memberships", (tenant_id, user_id, role.value, started))
    rows.add(
        "preferences", (people[MemberRole.OWNER], "theme", orjson.dumps("dark").decode(), started)
    )

    agents: dict[AgentRole, tuple[uuid.UUID, str]] = {}
    for role in AgentRole:
        agent_id = stable_id(slug, "agent", role.value)
        model = DEFAULT_MODEL[role]
        agents[role] = (agent_id, model)
        status = "PAUSED" if role is AgentRole.CONTENT_RESEARCHER else "IDLE"
        rows.add(
            "agents",
            (
                agent_id,
                tenant_id,
                role.value,
                status,
                model,
                DEFAULT_CONCURRENCY[role],
                Decimal("5.00"),
                8,
                started,
            ),
        )

    activity_index = 0
    for c in range(len(CAMPAIGN_THEMES) * scale):
        theme, goal = CAMPAIGN_THEMES[c % len(CAMPAIGN_THEMES)]
        round_ = c // len(CAMPAIGN_THEMES)
        campaign_id = stable_id(slug, "campaign", c)
        created = anchor - dt.timedelta(days=95) + dt.timedelta(hours=c * 7)
        campaign_cap = None if c % 4 == 3 else Decimal(40 + 20 * (c % 5))
        rows.add(
            "campaigns",
            (
                campaign_id,
                tenant_id,
                theme if round_ == 0 else f"{theme} #{round_ + 1}",
                goal,
                CAMPAIGN_STATUSES[c % len(CAMPAIGN_STATUSES)],
                campaign_cap,
                created.date(),
                (created + dt.timedelta(days=120)).date(),
                created,
                created,
            ),
        )
        for d in range(3 + scale):
            kind = KINDS[(c + d) % len(KINDS)]
            deliverable_id = stable_id(slug, "deliverable", c, d)
            d_created = created + dt.timedelta(hours=d + 1)
            rows.add(
                "deliverables",
                (
                    deliverable_id,
                    tenant_id,
                    campaign_id,
                    f"{theme}: {kind.replace('_', ' ').lower()} {d + 1}",
                    kind,
                    DELIVERABLE_STATUSES[(c + d) % len(DELIVERABLE_STATUSES)],
                    anchor + dt.timedelta(days=3 + d),
                    d_created,
                ),
            )
            role = KIND_ROLE[kind]
            agent_id, model = agents[role]
            for a in range(1 + scale):
                status = ACTIVITY_STATUSES[activity_index % len(ACTIVITY_STATUSES)]
                activity_index += 1
                _add_activity(
                    rows,
                    rng,
                    anchor,
                    tenant_id,
                    campaign_id,
                    deliverable_id,
                    agent_id,
                    model,
                    kind,
                    status,
                    d_created,
                    activity_index,
                    people[MemberRole.MARKETER],
                    (slug, c, d, a),
                )
    _add_skills(rows, tenant_id, slug, anchor)
    return rows


def _add_activity(
    rows: Rows,
    rng: random.Random,
    anchor: dt.datetime,
    tenant_id: uuid.UUID,
    campaign_id: uuid.UUID,
    deliverable_id: uuid.UUID,
    agent_id: uuid.UUID,
    model: str,
    kind: str,
    status: str,
    not_before: dt.datetime,
    index: int,
    resolver: uuid.UUID,
    key: tuple[Any, ...],
) -> None:
    activity_id = stable_id(*key, "activity")
    span = (anchor - not_before).total_seconds()
    created = not_before + dt.timedelta(seconds=rng.uniform(0.05, 0.98) * span)
    started = status != "QUEUED"
    dispatched = created + dt.timedelta(seconds=rng.uniform(0.2, 3)) if started else None
    first_token = dispatched + dt.timedelta(seconds=rng.uniform(0.4, 1.5)) if dispatched else None
    completed = (
        first_token + dt.timedelta(minutes=rng.uniform(1, 20))
        if status in TERMINAL and first_token
        else None
    )
    output = (
        f"Draft {kind.replace('_', ' ').lower()} for review. "
        "Headline options, body copy and a call to action, tuned to the campaign's goal."
        if first_token
        else None
    )
    failure = "Provider timed out three times." if status == "FAILED" else None
    rows.add(
        "activities",
        (
            activity_id,
            tenant_id,
            campaign_id,
            deliverable_id,
            agent_id,
            status,
            WAKE_REASONS[index % len(WAKE_REASONS)],
            1 + index % 10,
            "Follow the brand voice guide; keep it under 400 words.",
            output,
            failure,
            created,
            dispatched,
            first_token,
            completed,
        ),
    )
    approval_status = APPROVAL_FOR_ACTIVITY.get(status)
    if approval_status:
        requested = (completed or first_token or created) + dt.timedelta(minutes=1)
        pending = approval_status == "PENDING"
        expires = (
            anchor + dt.timedelta(days=2, minutes=index * 7)
            if pending
            else requested + dt.timedelta(hours=48)
        )
        resolved = None if pending else requested + dt.timedelta(hours=2)
        rows.add(
            "approvals",
            (
                stable_id(*key, "approval"),
                tenant_id,
                campaign_id,
                activity_id,
                approval_status,
                KIND_RISK[kind],
                requested,
                expires,
                resolved,
                None if pending or approval_status == "EXPIRED" else resolver,
                "Tighten the headline." if approval_status == "REVISION_REQUESTED" else None,
            ),
        )
    if first_token:
        for n in range(rng.randint(3, 9)):
            input_tokens, output_tokens = rng.randint(4_000, 60_000), rng.randint(500, 6_000)
            at = first_token + dt.timedelta(seconds=20 * n + rng.uniform(0, 15))
            rows.add(
                "llm_calls",
                (
                    stable_id(*key, "call", n),
                    tenant_id,
                    activity_id,
                    agent_id,
                    campaign_id,
                    "openai"
                    if model.startswith("gpt")
                    else "anthropic"
                    if model.startswith("claude")
                    else "ollama",
                    model,
                    input_tokens,
                    output_tokens,
                    call_cost(model, input_tokens, output_tokens),
                    rng.randint(400, 9000),
                    at,
                ),
            )


def _add_skills(rows: Rows, tenant_id: uuid.UUID, slug: str, anchor: dt.datetime) -> None:
    created = anchor - dt.timedelta(days=100)
    # the global catalogue (switchboard/devdata/skill_catalogue.py), written once
    if slug == "acme":
        for name, role, summary, content in SKILLS:
            rows.add(
                "skills",
                (stable_id("skill", name), None, name, role, summary, content, created, created),
            )
    rows.add(
        "skills",
        (
            stable_id(slug, "skill", "house-style"),
            tenant_id,
            f"{slug.title()} house style",
            "COPYWRITER",
            f"Spelling, tone and banned words for {slug.title()}.",
            f"# {slug.title()} house style\n- British spelling; sentence-case headings.\n"
            f'- Say "{slug.title()}", never an abbreviation.\n'
            "- Banned words: *cheap*, *guarantee*, *world-class*.",
            created,
            created,
        ),
    )


async def copy_rows(conn: AsyncConnection, rows: Rows) -> None:
    """Bulk-load with COPY, in the caller's transaction. Loaded rows are history, not live
    changes: they write no activity-stream events (migrations/versions/0005)."""
    await conn.execute(text("SET LOCAL switchboard.bulk_load = 'on'"))
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    for table in COLUMNS:
        records = rows.tables.get(table)
        if records:
            await driver.copy_records_to_table(table, records=records, columns=COLUMNS[table])


async def rebuild_rollups(conn: AsyncConnection, tenant_id: uuid.UUID) -> None:
    for statement in REBUILD_SQL:
        await conn.execute(text(statement), {"tenant_id": tenant_id})


async def seed_tenant(conn: AsyncConnection, rows: Rows) -> uuid.UUID:
    tenant_id = rows.tables["tenants"][0][0]
    await copy_rows(conn, rows)
    await rebuild_rollups(conn, tenant_id)
    return tenant_id


async def seed_demo(
    conn: AsyncConnection,
    tenants: dict[str, tuple[str, Decimal | None]] | None = None,
    scale: int = 1,
    anchor: dt.datetime | None = None,
) -> list[uuid.UUID]:
    """Write the demo tenants (in the caller's transaction); returns their IDs."""
    anchor = anchor or seeding_anchor()
    return [
        await seed_tenant(conn, demo_rows(slug, name, cap, anchor, scale))
        for slug, (name, cap) in (tenants or DEMO_TENANTS).items()
    ]


async def database_is_empty(conn: AsyncConnection) -> bool:
    return (await conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM tenants)"))).scalar_one()
