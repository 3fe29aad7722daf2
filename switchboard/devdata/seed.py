"""Demo data: two client tenants with a little of everything, the same on every run.

`seed_demo` writes the tenants `acme` and `globex`: four users each (owner, admin, marketer,
viewer), one agent per role, campaigns in every status with deliverables, activities in
every status, pending approvals of every risk level and LLM calls over the last 90 days.
IDs, names and amounts are fixed; times are offsets from the start of the seeding day
(UTC), so the data looks the same whenever it is seeded. `scale` multiplies the work per
tenant (the tests use it for a larger tenant).

The generator core that the demo and the bench tenant (switchboard/devdata/bench.py) share is
here too: `TenantRows` and `llm_call_row` write each row, `copy_rows` loads them with COPY
and `rebuild_rollups` sums the spend.
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

from domain.agents import DEFAULT_CONCURRENCY, DEFAULT_MODEL, MODEL_PRICES, call_cost
from domain.enums import AgentRole, MemberRole
from domain.runs import risk_level
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


# Who serves each model (every model the seed can give an agent has a price).
PROVIDER = {
    model: "openai"
    if model.startswith("gpt")
    else "anthropic"
    if model.startswith("claude")
    else "ollama"
    for model in MODEL_PRICES
}


def llm_call_row(
    call_id: uuid.UUID,
    tenant_id: uuid.UUID,
    activity_id: uuid.UUID,
    agent_id: uuid.UUID,
    campaign_id: uuid.UUID,
    model: str,
    input_tokens: int,
    output_tokens: int,
    latency_ms: int,
    at: dt.datetime,
) -> tuple[Any, ...]:
    """An llm_calls row (`COLUMNS`), priced as the gateway prices a call."""
    return (
        call_id,
        tenant_id,
        activity_id,
        agent_id,
        campaign_id,
        PROVIDER[model],
        model,
        input_tokens,
        output_tokens,
        call_cost(model, input_tokens, output_tokens),
        latency_ms,
        at,
    )


@dataclass
class TenantRows:
    """The generator core of the demo and bench tenants: one tenant's rows and the IDs later
    rows refer to. Each method writes one kind of row the same way for both; the generators
    (`demo_rows`, switchboard/devdata/bench.py) choose how many, which statuses and when."""

    slug: str
    tenant_id: uuid.UUID
    people: dict[MemberRole, uuid.UUID]
    agents: dict[AgentRole, uuid.UUID]
    rows: Rows = field(default_factory=Rows)

    @classmethod
    def open(cls, slug: str, name: str, cap: Decimal | None, opened: dt.datetime) -> TenantRows:
        """The tenant, a user of each member role (`PEOPLE`), the owner's dark theme and an
        agent of each role with its defaults (the content researcher paused)."""
        tenant = cls(slug, stable_id(slug, "tenant"), {}, {})
        tenant.rows.add("tenants", (tenant.tenant_id, slug, name, cap, opened))
        for role, (local, display) in PEOPLE.items():
            email = f"{local}@{slug}.example"
            user_id = tenant.people[role] = stable_id("user", email)
            tenant.rows.add("users", (user_id, email, display, opened))
            tenant.rows.add("memberships", (tenant.tenant_id, user_id, role.value, opened))
        theme = orjson.dumps("dark").decode()
        tenant.rows.add("preferences", (tenant.people[MemberRole.OWNER], "theme", theme, opened))
        for role in AgentRole:
            agent_id = tenant.agents[role] = stable_id(slug, "agent", role.value)
            tenant.rows.add(
                "agents",
                (
                    agent_id,
                    tenant.tenant_id,
                    role.value,
                    "PAUSED" if role is AgentRole.CONTENT_RESEARCHER else "IDLE",
                    DEFAULT_MODEL[role],
                    DEFAULT_CONCURRENCY[role],
                    Decimal("5.00"),
                    8,
                    opened,
                ),
            )
        return tenant

    def agent_for(self, kind: str) -> tuple[uuid.UUID, str]:
        """The agent that works on deliverables of this kind, and its model."""
        role = KIND_ROLE[kind]
        return self.agents[role], DEFAULT_MODEL[role]

    def campaign(
        self,
        c: int,
        status: str,
        cap: Decimal | None,
        created: dt.datetime,
        runs_for: dt.timedelta,
    ) -> tuple[uuid.UUID, str]:
        """Campaign number `c`, on a theme of `CAMPAIGN_THEMES` (numbered from the second
        round of themes on); its ID and theme."""
        theme, goal = CAMPAIGN_THEMES[c % len(CAMPAIGN_THEMES)]
        round_ = c // len(CAMPAIGN_THEMES)
        campaign_id = stable_id(self.slug, "campaign", c)
        self.rows.add(
            "campaigns",
            (
                campaign_id,
                self.tenant_id,
                theme if round_ == 0 else f"{theme} #{round_ + 1}",
                goal,
                status,
                cap,
                created.date(),
                (created + runs_for).date(),
                created,
                created,
            ),
        )
        return campaign_id, theme

    def deliverable(
        self,
        campaign_id: uuid.UUID,
        theme: str,
        c: int,
        d: int,
        due_at: dt.datetime,
        created: dt.datetime,
    ) -> tuple[uuid.UUID, str]:
        """Deliverable `d` of campaign `c`, its kind and status in turn; its ID and kind."""
        kind = KINDS[(c + d) % len(KINDS)]
        deliverable_id = stable_id(self.slug, "deliverable", c, d)
        self.rows.add(
            "deliverables",
            (
                deliverable_id,
                self.tenant_id,
                campaign_id,
                f"{theme}: {kind.replace('_', ' ').lower()} {d + 1}",
                kind,
                DELIVERABLE_STATUSES[(c + d) % len(DELIVERABLE_STATUSES)],
                due_at,
                created,
            ),
        )
        return deliverable_id, kind

    def activity(
        self,
        activity_id: uuid.UUID,
        campaign_id: uuid.UUID,
        deliverable_id: uuid.UUID,
        kind: str,
        status: str,
        index: int,
        created: dt.datetime,
        dispatched: dt.datetime | None,
        first_token: dt.datetime | None,
        completed: dt.datetime | None,
    ) -> None:
        """An activity of the kind's agent: output once it has produced tokens, a failure
        reason if FAILED; its wake reason and priority follow `index`."""
        self.rows.add(
            "activities",
            (
                activity_id,
                self.tenant_id,
                campaign_id,
                deliverable_id,
                self.agent_for(kind)[0],
                status,
                WAKE_REASONS[index % len(WAKE_REASONS)],
                1 + index % 10,
                "Follow the brand voice guide; keep it under 400 words.",
                f"Draft {kind.replace('_', ' ').lower()} for review. "
                "Headline options, body copy and a call to action, tuned to the campaign's goal."
                if first_token
                else None,
                "Provider timed out three times." if status == "FAILED" else None,
                created,
                dispatched,
                first_token,
                completed,
            ),
        )

    def approval(
        self,
        approval_id: uuid.UUID,
        campaign_id: uuid.UUID,
        activity_id: uuid.UUID,
        kind: str,
        status: str,
        requested: dt.datetime,
        expires: dt.datetime,
        resolved: dt.datetime | None,
        resolver: uuid.UUID | None,
        comment: str | None,
    ) -> None:
        """An approval of an activity on a deliverable of this kind, at the risk level the
        gateway gives it (domain.runs.risk_level)."""
        self.rows.add(
            "approvals",
            (
                approval_id,
                self.tenant_id,
                campaign_id,
                activity_id,
                status,
                risk_level(KIND_ROLE[kind].value, kind),
                requested,
                expires,
                resolved,
                resolver,
                comment,
            ),
        )

    def house_style(self, created: dt.datetime, rules: str) -> None:
        """The tenant's own skill: its house style, these Markdown rules."""
        title = self.slug.title()
        self.rows.add(
            "skills",
            (
                stable_id(self.slug, "skill", "house-style"),
                self.tenant_id,
                f"{title} house style",
                "COPYWRITER",
                f"Spelling, tone and banned words for {title}.",
                f"# {title} house style\n{rules}",
                created,
                created,
            ),
        )


def demo_rows(
    slug: str, name: str, cap: Decimal | None, anchor: dt.datetime, scale: int = 1
) -> Rows:
    rng = random.Random(f"switchboard-demo:{slug}:{scale}")
    tenant = TenantRows.open(slug, name, cap, anchor - dt.timedelta(days=120))
    activity_index = 0
    for c in range(len(CAMPAIGN_THEMES) * scale):
        created = anchor - dt.timedelta(days=95) + dt.timedelta(hours=c * 7)
        campaign_id, theme = tenant.campaign(
            c,
            CAMPAIGN_STATUSES[c % len(CAMPAIGN_STATUSES)],
            None if c % 4 == 3 else Decimal(40 + 20 * (c % 5)),
            created,
            dt.timedelta(days=120),
        )
        for d in range(3 + scale):
            d_created = created + dt.timedelta(hours=d + 1)
            deliverable_id, kind = tenant.deliverable(
                campaign_id, theme, c, d, anchor + dt.timedelta(days=3 + d), d_created
            )
            for a in range(1 + scale):
                status = ACTIVITY_STATUSES[activity_index % len(ACTIVITY_STATUSES)]
                activity_index += 1
                _add_activity(
                    tenant,
                    rng,
                    anchor,
                    campaign_id,
                    deliverable_id,
                    kind,
                    status,
                    d_created,
                    activity_index,
                    (slug, c, d, a),
                )
    _add_skills(tenant, anchor)
    return tenant.rows


def _add_activity(
    tenant: TenantRows,
    rng: random.Random,
    anchor: dt.datetime,
    campaign_id: uuid.UUID,
    deliverable_id: uuid.UUID,
    kind: str,
    status: str,
    not_before: dt.datetime,
    index: int,
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
    tenant.activity(
        activity_id,
        campaign_id,
        deliverable_id,
        kind,
        status,
        index,
        created,
        dispatched,
        first_token,
        completed,
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
        tenant.approval(
            stable_id(*key, "approval"),
            campaign_id,
            activity_id,
            kind,
            approval_status,
            requested,
            expires,
            None if pending else requested + dt.timedelta(hours=2),
            None if pending or approval_status == "EXPIRED" else tenant.people[MemberRole.MARKETER],
            "Tighten the headline." if approval_status == "REVISION_REQUESTED" else None,
        )
    if first_token:
        agent_id, model = tenant.agent_for(kind)
        for n in range(rng.randint(3, 9)):
            input_tokens, output_tokens = rng.randint(4_000, 60_000), rng.randint(500, 6_000)
            at = first_token + dt.timedelta(seconds=20 * n + rng.uniform(0, 15))
            tenant.rows.add(
                "llm_calls",
                llm_call_row(
                    stable_id(*key, "call", n),
                    tenant.tenant_id,
                    activity_id,
                    agent_id,
                    campaign_id,
                    model,
                    input_tokens,
                    output_tokens,
                    rng.randint(400, 9000),
                    at,
                ),
            )


def _add_skills(tenant: TenantRows, anchor: dt.datetime) -> None:
    created = anchor - dt.timedelta(days=100)
    # the global catalogue (switchboard/devdata/skill_catalogue.py), written once
    if tenant.slug == "acme":
        for name, role, summary, content in SKILLS:
            tenant.rows.add(
                "skills",
                (stable_id("skill", name), None, name, role, summary, content, created, created),
            )
    tenant.house_style(
        created,
        "- British spelling; sentence-case headings.\n"
        f'- Say "{tenant.slug.title()}", never an abbreviation.\n'
        "- Banned words: *cheap*, *guarantee*, *world-class*.",
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


async def quiet_tenants(conn: AsyncConnection, tenant_ids: list[uuid.UUID]) -> None:
    """Cancel the seeded QUEUED and RUNNING activities of these tenants and set their agents
    IDLE, so that only the work a test or benchmark of the job worker creates runs."""
    await conn.execute(
        text(
            "UPDATE activities SET status = 'CANCELLED' WHERE tenant_id = ANY(:t) "
            "AND status IN ('QUEUED', 'RUNNING')"
        ),
        {"t": tenant_ids},
    )
    await conn.execute(
        text("UPDATE agents SET status = 'IDLE' WHERE tenant_id = ANY(:t)"), {"t": tenant_ids}
    )


async def database_is_empty(conn: AsyncConnection) -> bool:
    return (await conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM tenants)"))).scalar_one()
