"""Keyset pagination of every connection, as a client walking page after page sees it.

- Walking all pages of a connection yields each row exactly once, in the contract's order
  (approvals by `expiresAt` ascending, everything else `createdAt` descending, ties by ID
  in the same direction), with `hasNextPage` false only on the last page and `endCursor`
  the last edge's cursor. The expected order comes from SQL run directly in the test.
- Rows with identical sort values (down to the microsecond) are ordered by ID and a page
  boundary inside such a tie neither skips nor repeats a row.
- Rows inserted and deleted (or resolved, for approvals) while a client walks the pages
  never make a row that exists throughout repeat or go missing.

The seeded tenants are only read. Ties and concurrent changes use tenants created here
(fresh uuid4 IDs), removed again afterwards.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from domain.ids import to_global_id
from switchboard.settings import Settings
from tests.conftest import add_marketer, drop_tenant

US = dt.timedelta(microseconds=1)
T0 = dt.datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=dt.UTC)

# A tenant of our own


@dataclass
class World:
    """A tenant created for one test, with the owners every connection needs."""

    conn: asyncpg.Connection
    tenant_id: uuid.UUID
    token: str
    campaign: uuid.UUID = field(init=False)  # C0: owner of deliverables and pendingApprovals
    other_campaign: uuid.UUID = field(init=False)  # C1
    deliverable: uuid.UUID = field(init=False)  # D0 (in C0): owner of activities
    other_deliverable: uuid.UUID = field(init=False)  # D1 (in C0)
    carrier_deliverable: uuid.UUID = field(init=False)  # D2 (in C0): activities of approvals
    agent: uuid.UUID = field(init=False)  # A (COPYWRITER)
    other_agent: uuid.UUID = field(init=False)  # B (DATA_ANALYST)
    activity: uuid.UUID = field(init=False)  # X0 (in D0, of A): owner of llm calls
    other_activity: uuid.UUID = field(init=False)  # X1

    async def insert(self, table: str, **values: Any) -> uuid.UUID:
        values.setdefault("id", uuid.uuid4())
        columns = ", ".join(values)
        marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        await self.conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", *values.values()
        )
        return values["id"]

    async def campaign_at(self, at: dt.datetime, status: str = "ACTIVE") -> uuid.UUID:
        return await self.insert(
            "campaigns",
            tenant_id=self.tenant_id,
            name=f"Campaign {at.isoformat()}",
            status=status,
            created_at=at,
            updated_at=at,
        )

    async def deliverable_at(
        self, at: dt.datetime, campaign: uuid.UUID, status: str = "PLANNED"
    ) -> uuid.UUID:
        return await self.insert(
            "deliverables",
            tenant_id=self.tenant_id,
            campaign_id=campaign,
            title=f"Deliverable {at.isoformat()}",
            kind="BLOG_POST",
            status=status,
            created_at=at,
        )

    async def activity_at(
        self,
        at: dt.datetime,
        deliverable: uuid.UUID,
        agent: uuid.UUID,
        status: str = "QUEUED",
        campaign: uuid.UUID | None = None,
    ) -> uuid.UUID:
        return await self.insert(
            "activities",
            tenant_id=self.tenant_id,
            campaign_id=campaign or self.campaign,
            deliverable_id=deliverable,
            agent_id=agent,
            status=status,
            wake_reason="MANUAL",
            created_at=at,
        )

    async def approval_expiring_at(
        self,
        at: dt.datetime,
        campaign: uuid.UUID | None = None,
        status: str = "PENDING",
        risk: str = "HIGH",
    ) -> uuid.UUID:
        campaign = campaign or self.campaign
        carrier = await self.activity_at(
            T0 - dt.timedelta(days=60),
            self.carrier_deliverable,
            self.other_agent,
            status="AWAITING_APPROVAL",
            campaign=campaign,
        )
        return await self.insert(
            "approvals",
            tenant_id=self.tenant_id,
            campaign_id=campaign,
            activity_id=carrier,
            status=status,
            risk_level=risk,
            requested_at=T0 - dt.timedelta(days=60),
            expires_at=at,
            resolved_at=None if status == "PENDING" else T0,
        )

    async def llm_call_at(self, at: dt.datetime, activity: uuid.UUID) -> uuid.UUID:
        return await self.insert(
            "llm_calls",
            tenant_id=self.tenant_id,
            activity_id=activity,
            agent_id=self.agent,
            campaign_id=self.campaign,
            provider="openai",
            model="gpt-4.1",
            input_tokens=1000,
            output_tokens=100,
            cost_usd=0,
            latency_ms=500,
            created_at=at,
        )


async def create_world(conn: asyncpg.Connection, settings: Settings) -> World:
    tenant_id = uuid.uuid4()
    slug = f"pagination-{tenant_id.hex[:12]}"
    await conn.execute(
        "INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, $3, $4)",
        tenant_id,
        slug,
        f"Pagination test {slug}",
        T0 - dt.timedelta(days=400),
    )
    token = await add_marketer(conn, settings, tenant_id, slug, "Page Walker")
    world = World(conn=conn, tenant_id=tenant_id, token=token)
    world.agent = await world.insert(
        "agents", tenant_id=tenant_id, role="COPYWRITER", model="gpt-4.1", concurrency=2
    )
    world.other_agent = await world.insert(
        "agents", tenant_id=tenant_id, role="DATA_ANALYST", model="gpt-4.1", concurrency=2
    )
    long_ago = T0 - dt.timedelta(days=300)
    world.campaign = await world.campaign_at(long_ago)
    world.other_campaign = await world.campaign_at(long_ago + US)
    world.deliverable = await world.deliverable_at(long_ago, world.campaign)
    world.other_deliverable = await world.deliverable_at(long_ago + US, world.campaign)
    world.carrier_deliverable = await world.deliverable_at(long_ago + 2 * US, world.campaign)
    world.activity = await world.activity_at(long_ago, world.deliverable, world.agent)
    world.other_activity = await world.activity_at(long_ago + US, world.deliverable, world.agent)
    return world


@pytest.fixture
async def world(db_conn: asyncpg.Connection, settings: Settings) -> AsyncIterator[World]:
    created = await create_world(db_conn, settings)
    yield created
    await drop_tenant(db_conn, created.tenant_id)


# The connections


@dataclass(frozen=True)
class Case:
    """One connection: how to ask for it, which rows it holds (SQL), and how to add rows."""

    name: str
    root: str  # "tenant" (a field of Tenant), "query" (a root field) or an owner type
    field: str
    args: str  # filter arguments, e.g. ", status: ACTIVE"
    sort_field: str  # createdAt or expiresAt
    descending: bool
    # (owner_id, id, sort value) of every row of the tenant $1, in the contract's order.
    rows_sql: str
    # Every possible owner of the tenant $1 (so that empty connections are walked too).
    owners_sql: str
    # A row at that sort value: one of the connection (True) or a near miss that is not.
    make: Callable[[World, dt.datetime, bool], Awaitable[uuid.UUID]]
    # Take a row out of the connection, as happens elsewhere (delete, or resolve).
    remove: Callable[[World, uuid.UUID], Awaitable[None]]
    owner: Callable[[World], uuid.UUID]

    def query(self) -> str:
        selection = (
            f"{{ edges {{ cursor node {{ id {self.sort_field} }} }} "
            "pageInfo { hasNextPage endCursor } }"
        )
        inner = f"{self.field}(first: $first, after: $after{self.args}) {selection}"
        if self.root == "query":
            return f"query($first: Int!, $after: String) {{ {inner} }}"
        if self.root == "tenant":
            return f"query($first: Int!, $after: String) {{ tenant {{ {inner} }} }}"
        return (
            "query($first: Int!, $after: String, $owner: ID!) "
            f"{{ node(id: $owner) {{ ... on {self.root} {{ {inner} }} }} }}"
        )

    def path(self) -> tuple[str, ...]:
        if self.root == "query":
            return (self.field,)
        return ("tenant" if self.root == "tenant" else "node", self.field)

    def owner_gid(self, owner_id: uuid.UUID) -> str | None:
        return None if self.root in ("tenant", "query") else to_global_id(self.root, owner_id)


def _delete(table: str) -> Callable[[World, uuid.UUID], Awaitable[None]]:
    async def remove(world: World, row_id: uuid.UUID) -> None:
        await world.conn.execute(f"DELETE FROM {table} WHERE id = $1", row_id)

    return remove


async def _resolve(world: World, approval_id: uuid.UUID) -> None:
    await world.conn.execute(
        "UPDATE approvals SET status = 'APPROVED', resolved_at = $2 WHERE id = $1",
        approval_id,
        T0,
    )


TENANT_OWNER = "SELECT $1::uuid"


def _owners(table: str) -> str:
    return f"SELECT id FROM {table} WHERE tenant_id = $1"


CAMPAIGN_ROWS = (
    "SELECT tenant_id, id, created_at FROM campaigns WHERE tenant_id = $1 {extra} "
    "ORDER BY created_at DESC, id DESC"
)
DELIVERABLE_ROWS = (
    "SELECT campaign_id, id, created_at FROM deliverables WHERE tenant_id = $1 {extra} "
    "ORDER BY campaign_id, created_at DESC, id DESC"
)
ACTIVITY_ROWS = (
    "SELECT {owner}, id, created_at FROM activities WHERE tenant_id = $1 {extra} "
    "ORDER BY {owner}, created_at DESC, id DESC"
)
APPROVAL_ROWS = (
    "SELECT {owner}, id, expires_at FROM approvals "
    "WHERE tenant_id = $1 AND status = 'PENDING' {extra} "
    "ORDER BY {owner}, expires_at ASC, id ASC"
)
LLM_CALL_ROWS = (
    "SELECT activity_id, id, created_at FROM llm_calls WHERE tenant_id = $1 "
    "ORDER BY activity_id, created_at DESC, id DESC"
)

CASES = [
    Case(
        name="tenant.campaigns",
        root="tenant",
        field="campaigns",
        args="",
        sort_field="createdAt",
        descending=True,
        rows_sql=CAMPAIGN_ROWS.format(extra=""),
        owners_sql=TENANT_OWNER,
        make=lambda w, at, matching: w.campaign_at(at, "ACTIVE" if matching else "PAUSED"),
        remove=_delete("campaigns"),
        owner=lambda w: w.tenant_id,
    ),
    Case(
        name="tenant.campaigns(status: PAUSED)",
        root="tenant",
        field="campaigns",
        args=", status: PAUSED",
        sort_field="createdAt",
        descending=True,
        rows_sql=CAMPAIGN_ROWS.format(extra="AND status = 'PAUSED'"),
        owners_sql=TENANT_OWNER,
        make=lambda w, at, matching: w.campaign_at(at, "PAUSED" if matching else "ACTIVE"),
        remove=_delete("campaigns"),
        owner=lambda w: w.tenant_id,
    ),
    Case(
        name="campaign.deliverables",
        root="Campaign",
        field="deliverables",
        args="",
        sort_field="createdAt",
        descending=True,
        rows_sql=DELIVERABLE_ROWS.format(extra=""),
        owners_sql=_owners("campaigns"),
        make=lambda w, at, matching: w.deliverable_at(
            at, w.campaign if matching else w.other_campaign
        ),
        remove=_delete("deliverables"),
        owner=lambda w: w.campaign,
    ),
    Case(
        name="campaign.deliverables(status: IN_REVIEW)",
        root="Campaign",
        field="deliverables",
        args=", status: IN_REVIEW",
        sort_field="createdAt",
        descending=True,
        rows_sql=DELIVERABLE_ROWS.format(extra="AND status = 'IN_REVIEW'"),
        owners_sql=_owners("campaigns"),
        make=lambda w, at, matching: w.deliverable_at(
            at, w.campaign, "IN_REVIEW" if matching else "PLANNED"
        ),
        remove=_delete("deliverables"),
        owner=lambda w: w.campaign,
    ),
    Case(
        name="deliverable.activities",
        root="Deliverable",
        field="activities",
        args="",
        sort_field="createdAt",
        descending=True,
        rows_sql=ACTIVITY_ROWS.format(owner="deliverable_id", extra=""),
        owners_sql=_owners("deliverables"),
        make=lambda w, at, matching: w.activity_at(
            at, w.deliverable if matching else w.other_deliverable, w.agent
        ),
        remove=_delete("activities"),
        owner=lambda w: w.deliverable,
    ),
    Case(
        name="agent.activities",
        root="Agent",
        field="activities",
        args="",
        sort_field="createdAt",
        descending=True,
        rows_sql=ACTIVITY_ROWS.format(owner="agent_id", extra=""),
        owners_sql=_owners("agents"),
        make=lambda w, at, matching: w.activity_at(
            at, w.deliverable, w.agent if matching else w.other_agent
        ),
        remove=_delete("activities"),
        owner=lambda w: w.agent,
    ),
    Case(
        name="agent.activities(status: AWAITING_APPROVAL)",
        root="Agent",
        field="activities",
        args=", status: AWAITING_APPROVAL",
        sort_field="createdAt",
        descending=True,
        rows_sql=ACTIVITY_ROWS.format(owner="agent_id", extra="AND status = 'AWAITING_APPROVAL'"),
        owners_sql=_owners("agents"),
        make=lambda w, at, matching: w.activity_at(
            at, w.deliverable, w.agent, "AWAITING_APPROVAL" if matching else "RUNNING"
        ),
        remove=_delete("activities"),
        owner=lambda w: w.agent,
    ),
    Case(
        name="approvalQueue",
        root="query",
        field="approvalQueue",
        args="",
        sort_field="expiresAt",
        descending=False,
        rows_sql=APPROVAL_ROWS.format(owner="tenant_id", extra=""),
        owners_sql=TENANT_OWNER,
        make=lambda w, at, matching: w.approval_expiring_at(
            at, status="PENDING" if matching else "APPROVED"
        ),
        remove=_resolve,
        owner=lambda w: w.tenant_id,
    ),
    Case(
        name="approvalQueue(riskLevel: MEDIUM)",
        root="query",
        field="approvalQueue",
        args=", riskLevel: MEDIUM",
        sort_field="expiresAt",
        descending=False,
        rows_sql=APPROVAL_ROWS.format(owner="tenant_id", extra="AND risk_level = 'MEDIUM'"),
        owners_sql=TENANT_OWNER,
        make=lambda w, at, matching: w.approval_expiring_at(
            at, risk="MEDIUM" if matching else "HIGH"
        ),
        remove=_resolve,
        owner=lambda w: w.tenant_id,
    ),
    Case(
        name="campaign.pendingApprovals",
        root="Campaign",
        field="pendingApprovals",
        args="",
        sort_field="expiresAt",
        descending=False,
        rows_sql=APPROVAL_ROWS.format(owner="campaign_id", extra=""),
        owners_sql=_owners("campaigns"),
        make=lambda w, at, matching: w.approval_expiring_at(
            at, campaign=w.campaign if matching else w.other_campaign
        ),
        remove=_resolve,
        owner=lambda w: w.campaign,
    ),
    Case(
        name="activity.llmCalls",
        root="Activity",
        field="llmCalls",
        args="",
        sort_field="createdAt",
        descending=True,
        rows_sql=LLM_CALL_ROWS,
        owners_sql=_owners("activities"),
        make=lambda w, at, matching: w.llm_call_at(
            at, w.activity if matching else w.other_activity
        ),
        remove=_delete("llm_calls"),
        owner=lambda w: w.activity,
    ),
]
CASE_IDS = [case.name for case in CASES]


# Walking pages


def _row_id(global_id: str) -> uuid.UUID:
    return uuid.UUID(hex=global_id.partition("_")[2])


def _dig(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        assert data is not None, path
        data = data[key]
    return data


async def fetch_page(
    gql: Any, token: str, case: Case, owner_id: uuid.UUID, first: int, after: str | None
) -> dict[str, Any]:
    variables: dict[str, Any] = {"first": first, "after": after}
    owner = case.owner_gid(owner_id)
    if owner is not None:
        variables["owner"] = owner
    response = await gql(case.query(), variables, token)
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return _dig(body["data"], case.path())


@dataclass
class Walk:
    edges: list[dict[str, Any]]
    pages: int

    @property
    def ids(self) -> list[uuid.UUID]:
        return [_row_id(edge["node"]["id"]) for edge in self.edges]


async def walk(
    gql: Any,
    token: str,
    case: Case,
    owner_id: uuid.UUID,
    first: int,
    between_pages: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None,
) -> Walk:
    """Every page in turn, checking each page's shape; `between_pages` runs after each page."""
    edges: list[dict[str, Any]] = []
    after: str | None = None
    pages = 0
    while True:
        page = await fetch_page(gql, token, case, owner_id, first, after)
        pages += 1
        assert pages <= 2000, "the walk does not end"
        page_edges, info = page["edges"], page["pageInfo"]
        assert len(page_edges) <= first
        # Only the first page of an empty connection may be empty: a page after a cursor
        # exists only because the previous one said there is more.
        assert page_edges or after is None, (case.name, first, pages)
        assert info["endCursor"] == (page_edges[-1]["cursor"] if page_edges else None)
        if info["hasNextPage"]:
            assert len(page_edges) == first, (case.name, first, pages)
        edges.extend(page_edges)
        if not info["hasNextPage"]:
            return Walk(edges=edges, pages=pages)
        if between_pages is not None:
            await between_pages(page_edges)
        after = info["endCursor"]


def _sort_key(case: Case, edge: dict[str, Any]) -> tuple[dt.datetime, uuid.UUID]:
    at = dt.datetime.fromisoformat(edge["node"][case.sort_field])
    assert at.tzinfo is not None
    return at, _row_id(edge["node"]["id"])


def _assert_in_contract_order(case: Case, edges: list[dict[str, Any]]) -> None:
    keys = [_sort_key(case, edge) for edge in edges]
    for before, after in itertools.pairwise(keys):
        assert (before > after) if case.descending else (before < after), (before, after)


async def expected_rows(
    conn: asyncpg.Connection, case: Case, tenant_id: uuid.UUID
) -> dict[uuid.UUID, list[tuple[uuid.UUID, dt.datetime]]]:
    """owner → [(id, sort value)] in the contract's order, straight from SQL."""
    by_owner: dict[uuid.UUID, list[tuple[uuid.UUID, dt.datetime]]] = {
        row[0]: [] for row in await conn.fetch(case.owners_sql, tenant_id)
    }
    for owner, row_id, at in await conn.fetch(case.rows_sql, tenant_id):
        by_owner[owner].append((row_id, at))
    return by_owner


def _firsts(count: int) -> list[int]:
    """Page sizes worth walking a connection of `count` rows with: 1, 100 and the edges
    (pages of 1 and 2 only up to 150 rows: the long lists take too many requests)."""
    candidates = {1, 2, 3, 100, count - 1, count, count + 1} if count <= 150 else {7, 100}
    return sorted(n for n in candidates if 1 <= n <= 100)


def _sample_owners(by_owner: dict[uuid.UUID, list[Any]]) -> list[uuid.UUID]:
    """The owners with most and fewest rows and one in between (a few, not all)."""
    ranked = sorted(by_owner, key=lambda owner: (-len(by_owner[owner]), owner))
    picks = [ranked[0], ranked[len(ranked) // 2], ranked[-1]]
    return list(dict.fromkeys(picks))


# Seeded tenants


@pytest.mark.parametrize("slug", ["acme", "initech"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_walking_every_page_yields_each_row_once_in_order(
    gql: Any, token: Any, db_conn: asyncpg.Connection, case: Case, slug: str
) -> None:
    tenant_id = await db_conn.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)
    by_owner = await expected_rows(db_conn, case, tenant_id)
    owners = _sample_owners(by_owner)
    assert any(by_owner[owner] for owner in owners), "the seed has rows for this connection"
    for owner in owners:
        expected = [row_id for row_id, _ in by_owner[owner]]
        for first in _firsts(len(expected)):
            result = await walk(gql, token(slug), case, owner, first)
            assert result.ids == expected, (case.name, slug, owner, first)
            assert result.pages == max(1, -(-len(expected) // first))
            _assert_in_contract_order(case, result.edges)


async def test_large_tenant_has_more_than_a_page_of_approvals_and_campaigns(
    gql: Any, token: Any, db_conn: asyncpg.Connection
) -> None:
    """Guards the walks above: initech's lists span several pages even at first: 100."""
    tenant_id = await db_conn.fetchval("SELECT id FROM tenants WHERE slug = 'initech'")
    pending = await db_conn.fetchval(
        "SELECT count(*) FROM approvals WHERE tenant_id = $1 AND status = 'PENDING'", tenant_id
    )
    assert pending > 200
    result = await walk(gql, token("initech"), CASES[7], tenant_id, 100)
    assert len(result.ids) == pending and result.pages == -(-pending // 100)


# Ties


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_ties_are_ordered_by_id_and_pages_split_them_cleanly(
    gql: Any, world: World, case: Case
) -> None:
    """Many rows share one sort value (and their neighbours differ by a microsecond); at every
    page size the walk gives each row once, ties by ID in the connection's direction."""
    offsets = [0] * 7 + [1, 1, -1, -1] + [3_600_000_000, -3_600_000_000]
    made = []
    for n, offset in enumerate(offsets):
        at = T0 + offset * US
        made.append(await case.make(world, at, True))
        if n % 3 == 0:
            await case.make(world, at, False)  # a near miss, at the same moment
    by_owner = await expected_rows(world.conn, case, world.tenant_id)
    rows = by_owner[case.owner(world)]
    assert set(made) <= {row_id for row_id, _ in rows}
    # The contract's order, computed here: sort value, then ID, both in one direction.
    in_order = sorted(rows, key=lambda r: (r[1], r[0]), reverse=case.descending)
    expected = [row_id for row_id, _ in in_order]
    assert expected == [row_id for row_id, _ in rows]  # SQL agrees
    for first in range(1, len(expected) + 2):
        result = await walk(gql, world.token, case, case.owner(world), first)
        assert result.ids == expected, (case.name, first)
        _assert_in_contract_order(case, result.edges)


# Concurrent changes


@pytest.mark.parametrize("first", [1, 3])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_rows_changing_during_a_walk_never_repeat_or_hide_the_others(
    gql: Any, world: World, case: Case, first: int
) -> None:
    """Between pages, rows are added at the head of the order (newer / expiring sooner), at
    the cursor's own sort value, and further on; rows already seen, the cursor's own row
    and rows not yet reached are removed. Every row that exists throughout shows up once."""
    step = dt.timedelta(minutes=1)
    direction = -1 if case.descending else 1  # later rows in the order: further this way
    initial = []
    for n in range(14):
        at = T0 + direction * (n // 2 * 2) * step  # pairs share a sort value
        initial.append(await case.make(world, at, True))
        if n % 4 == 0:
            await case.make(world, at, False)
    by_owner = await expected_rows(world.conn, case, world.tenant_id)
    before = [row_id for row_id, _ in by_owner[case.owner(world)]]
    assert set(initial) <= set(before)
    sort_of = dict(by_owner[case.owner(world)])

    removed: set[uuid.UUID] = set()
    added: set[uuid.UUID] = set()
    seen_ids: set[uuid.UUID] = set()
    removable = set(initial)  # not the world's own campaigns, deliverables, activities
    head = T0 - direction * dt.timedelta(days=1)
    counter = itertools.count(1)

    async def change(page_edges: list[dict[str, Any]]) -> None:
        n = next(counter)
        # New rows at the head of the order: before every cursor, so never on a later page.
        added.add(await case.make(world, head - direction * n * US, True))
        cursor_row = _row_id(page_edges[-1]["node"]["id"])
        if n <= 4:  # (rows ahead of the cursor lengthen the walk: only a few)
            # One at the cursor row's own sort value (its ID lands on either side of it).
            if cursor_row in sort_of:
                added.add(await case.make(world, sort_of[cursor_row], True))
            # One further on, not reached yet.
            added.add(await case.make(world, T0 + direction * dt.timedelta(hours=n), True))
        # Remove a row already seen; every other page the cursor's own row.
        seen = _row_id(page_edges[0]["node"]["id"])
        target = cursor_row if n % 2 == 0 else seen
        if target in removable and target not in removed:
            await case.remove(world, target)
            removed.add(target)
        # And, every third page, a row not reached yet.
        if n % 3 == 0:
            ahead = next(
                (r for r in reversed(initial) if r not in removed and r not in seen_ids), None
            )
            if ahead is not None:
                await case.remove(world, ahead)
                removed.add(ahead)
        seen_ids.update(_row_id(edge["node"]["id"]) for edge in page_edges)

    result = await walk(gql, world.token, case, case.owner(world), first, change)
    ids = result.ids
    assert len(ids) == len(set(ids)), "a row was repeated"
    throughout = [row_id for row_id in before if row_id not in removed]
    assert [row_id for row_id in ids if row_id in set(throughout)] == throughout
    assert set(ids) <= set(before) | added
    # A row removed before the walk reached it does not appear afterwards.
    assert not (set(ids) & (removed - seen_ids))
    _assert_in_contract_order(case, result.edges)
    assert result.pages >= 3  # the changes really happened between pages


# First: 0 and bounds


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_first_zero_returns_no_edges_and_tells_whether_rows_exist(
    gql: Any, token: Any, db_conn: asyncpg.Connection, world: World, case: Case
) -> None:
    tenant_id = await db_conn.fetchval("SELECT id FROM tenants WHERE slug = 'initech'")
    by_owner = await expected_rows(db_conn, case, tenant_id)
    owner = max(by_owner, key=lambda o: (len(by_owner[o]), o))
    rows = by_owner[owner]
    assert len(rows) >= 2

    page = await fetch_page(gql, token("initech"), case, owner, 0, None)
    assert page == {"edges": [], "pageInfo": {"hasNextPage": True, "endCursor": None}}

    # After the next-to-last row there is one more; after the last, none.
    full = await walk(gql, token("initech"), case, owner, 100)
    cursors = [edge["cursor"] for edge in full.edges]
    page = await fetch_page(gql, token("initech"), case, owner, 0, cursors[-2])
    assert page == {"edges": [], "pageInfo": {"hasNextPage": True, "endCursor": None}}
    page = await fetch_page(gql, token("initech"), case, owner, 0, cursors[-1])
    assert page == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}

    # A tenant of our own: whether rows exist is all that first: 0 tells.
    own = (await expected_rows(db_conn, case, world.tenant_id))[case.owner(world)]
    page = await fetch_page(gql, world.token, case, case.owner(world), 0, None)
    assert page == {"edges": [], "pageInfo": {"hasNextPage": bool(own), "endCursor": None}}
    if not own:
        await case.make(world, T0, True)
        page = await fetch_page(gql, world.token, case, case.owner(world), 0, None)
        assert page == {"edges": [], "pageInfo": {"hasNextPage": True, "endCursor": None}}


@pytest.mark.parametrize("first", [-1, 101, 1000])
async def test_first_out_of_range_is_bad_user_input(gql: Any, token: Any, first: int) -> None:
    for case in (CASES[0], CASES[7]):
        response = await gql(case.query(), {"first": first, "after": None}, token("acme"))
        body = response.json()
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("after", ["not-a-cursor", "", "e30", "W10"])
async def test_malformed_cursor_is_bad_user_input(gql: Any, token: Any, after: str) -> None:
    response = await gql(CASES[0].query(), {"first": 5, "after": after}, token("acme"))
    body = response.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
