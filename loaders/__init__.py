"""The read side: one set of DataLoaders per request, bound to the request's tenant.

Every loader batches all the keys asked for in one tick into one SQL statement (or one per
distinct set of arguments), and every statement filters on the request's tenant, so an ID
of another tenant is simply not found. Loaders are created lazily: a request pays only for
the ones its operation uses.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

from aiodataloader import DataLoader

from domain.enums import AGENT_ROLE_ORDER
from domain.ids import to_global_id
from loaders import shapes
from loaders.batching import BatchScheduler, ScheduledLoader
from loaders.connections import ConnectionKey, ConnectionSpec, load_pages
from loaders.spend import load_spend, load_spend_reports
from schema import types as t
from switchboard.infra.db import Database

CAMPAIGNS = ConnectionSpec(
    shape=shapes.CAMPAIGN,
    owner_column="tenant_id",
    sort_column="created_at",
    descending=True,
    filter_column="status",
    # Each campaign's pending approvals, primed into `pending_approval_count_of_campaign`:
    # the dashboard, the one reader of the list, shows it on every row.
    extra="(SELECT count(*) FROM approvals a WHERE a.tenant_id = t.tenant_id"
    " AND a.campaign_id = t.id AND a.status = 'PENDING') AS pending_approval_count",
)
DELIVERABLES = ConnectionSpec(
    shape=shapes.DELIVERABLE,
    owner_column="campaign_id",
    sort_column="created_at",
    descending=True,
    filter_column="status",
)
ACTIVITIES_OF_DELIVERABLE = ConnectionSpec(
    shape=shapes.ACTIVITY,
    owner_column="deliverable_id",
    sort_column="created_at",
    descending=True,
)
ACTIVITIES_OF_AGENT = ConnectionSpec(
    shape=shapes.ACTIVITY,
    owner_column="agent_id",
    sort_column="created_at",
    descending=True,
    filter_column="status",
)
PENDING_APPROVALS_OF_TENANT = ConnectionSpec(
    shape=shapes.APPROVAL,
    owner_column="tenant_id",
    sort_column="expires_at",
    descending=False,
    where="t.status = 'PENDING'",
    filter_column="risk_level",
)
PENDING_APPROVALS_OF_CAMPAIGN = ConnectionSpec(
    shape=shapes.APPROVAL,
    owner_column="campaign_id",
    sort_column="expires_at",
    descending=False,
    where="t.status = 'PENDING'",
)
LLM_CALLS_OF_ACTIVITY = ConnectionSpec(
    shape=shapes.LLM_CALL,
    owner_column="activity_id",
    sort_column="created_at",
    descending=True,
)

# An approval's columns beside an activity's in one row (`latest_activity_of_deliverable`).
APPROVAL_PREFIX = "approval__"

BY_ID = {
    shape.type_name: shape
    for shape in (
        shapes.CAMPAIGN,
        shapes.DELIVERABLE,
        shapes.ACTIVITY,
        shapes.APPROVAL,
        shapes.AGENT,
        shapes.LLM_CALL,
    )
}


class Loaders:
    """The DataLoaders of one request. Never share an instance between requests or tenants."""

    def __init__(self, db: Database, tenant_id: uuid.UUID) -> None:
        self.db = db.reads_for(tenant_id)  # may read from a replica (infra/replicas.py)
        self.tenant_id = tenant_id
        self.scheduler = BatchScheduler()
        # What the operation reads of each type (its attributes and resolver fields, by
        # GraphQL type name), set by the planned executor before the first load (None:
        # everything).
        self.reads: Mapping[str, frozenset[str]] | None = None

    def projection(self, shape: shapes.TableShape) -> shapes.Projection:
        """The columns of `shape`'s table this request selects: only the plain columns its
        operation reads (see loaders/shapes.py)."""
        reads = self.reads
        return shape.projection(None if reads is None else reads.get(shape.type_name, frozenset()))

    def close(self) -> None:
        """Drop every loader and its cache at the end of the request.

        Each loader's batch function refers back to this object, a reference cycle that
        only the cyclic garbage collector could free, taking every loaded row with it;
        dropping the loaders lets reference counting free them at once.
        """
        for name in [key for key, value in vars(self).items() if isinstance(value, DataLoader)]:
            vars(self)[name].clear_all()
            del vars(self)[name]

    # Objects by id

    def _by_id(self, kind: str) -> DataLoader:
        shape = BY_ID[kind]
        table, projection = shape.table, self.projection(shape)
        columns, build = projection.columns, projection.build

        async def batch(ids: Sequence[uuid.UUID]) -> list[Any]:
            rows = await self.db.fetch(
                f"SELECT {columns} FROM {table} t "
                "WHERE t.tenant_id = :tenant_id AND t.id = ANY(:ids)",
                {"tenant_id": self.tenant_id, "ids": list(ids)},
            )
            found = {row["id"]: build(row) for row in rows}
            return [found.get(row_id) for row_id in ids]

        return ScheduledLoader(batch, self.scheduler)

    @cached_property
    def campaign(self) -> DataLoader:
        return self._by_id("Campaign")

    @cached_property
    def deliverable(self) -> DataLoader:
        return self._by_id("Deliverable")

    @cached_property
    def activity(self) -> DataLoader:
        return self._by_id("Activity")

    @cached_property
    def approval(self) -> DataLoader:
        return self._by_id("Approval")

    @cached_property
    def agent(self) -> DataLoader:
        return self._by_id("Agent")

    @cached_property
    def llm_call(self) -> DataLoader:
        return self._by_id("LlmCall")

    @cached_property
    def tenant(self) -> DataLoader:
        """The request's tenant; with its pending approvals in the same statement, primed
        into `pending_approval_count_of_tenant`, when the operation reads them (the
        dashboard does): one statement fewer for one index count."""
        counts = None
        sql = f"SELECT {shapes.TENANT_COLUMNS} FROM tenants t WHERE t.id = :tenant_id"
        if self.reads is not None and "pending_approval_count" in self.reads.get("Tenant", ()):
            counts = self.pending_approval_count_of_tenant
            sql = (
                f"SELECT {shapes.TENANT_COLUMNS}, (SELECT count(*) FROM approvals a "
                "WHERE a.tenant_id = t.id AND a.status = 'PENDING') AS pending_approval_count "
                "FROM tenants t WHERE t.id = :tenant_id"
            )

        async def batch(ids: Sequence[uuid.UUID]) -> list[t.Tenant | None]:
            # Only the request's own tenant exists for this request.
            rows = await self.db.fetch(sql, {"tenant_id": self.tenant_id})
            found = {row["id"]: shapes.tenant_from_row(row) for row in rows}
            if counts is not None:
                for row in rows:
                    counts.prime(row["id"], row["pending_approval_count"])
            return [found.get(row_id) for row_id in ids]

        return ScheduledLoader(batch, self.scheduler)

    @cached_property
    def skill(self) -> DataLoader:
        async def batch(ids: Sequence[uuid.UUID]) -> list[t.Skill | None]:
            rows = await self.db.fetch(
                f"SELECT {shapes.SKILL_COLUMNS} FROM skills t "
                "WHERE (t.tenant_id = :tenant_id OR t.tenant_id IS NULL) AND t.id = ANY(:ids)",
                {"tenant_id": self.tenant_id, "ids": list(ids)},
            )
            found = {row["id"]: shapes.skill_from_row(row) for row in rows}
            return [found.get(row_id) for row_id in ids]

        return ScheduledLoader(batch, self.scheduler)

    @cached_property
    def member(self) -> DataLoader:
        """A user of this tenant, as a Viewer (with their role here)."""

        async def batch(ids: Sequence[uuid.UUID]) -> list[t.Viewer | None]:
            rows = await self.db.fetch(
                "SELECT u.id, u.email, u.display_name, m.role FROM users u "
                "JOIN memberships m ON m.user_id = u.id AND m.tenant_id = :tenant_id "
                "WHERE u.id = ANY(:ids)",
                {"tenant_id": self.tenant_id, "ids": list(ids)},
            )
            found = {
                row["id"]: t.Viewer(
                    id=to_global_id("User", row["id"]),
                    user_id=row["id"],
                    tenant_id=self.tenant_id,
                    email=row["email"],
                    display_name=row["display_name"],
                    role=row["role"],
                )
                for row in rows
            }
            return [found.get(row_id) for row_id in ids]

        return ScheduledLoader(batch, self.scheduler)

    # Connections

    def _pages(
        self, spec: ConnectionSpec, on_rows: Callable[[Sequence[Any]], None] | None = None
    ) -> DataLoader:
        projection = self.projection(spec.shape)

        async def batch(keys: Sequence[ConnectionKey]) -> list[t.Connection[Any]]:
            return await load_pages(self.db, self.tenant_id, spec, projection, keys, on_rows)

        return ScheduledLoader(batch, self.scheduler)

    @cached_property
    def campaigns_of_tenant(self) -> DataLoader:
        counts = self.pending_approval_count_of_campaign

        def prime_counts(rows: Sequence[Any]) -> None:
            for row in rows:
                counts.prime(row["id"], row["pending_approval_count"])

        return self._pages(CAMPAIGNS, prime_counts)

    @cached_property
    def deliverables_of_campaign(self) -> DataLoader:
        return self._pages(DELIVERABLES)

    @cached_property
    def activities_of_deliverable(self) -> DataLoader:
        return self._pages(ACTIVITIES_OF_DELIVERABLE)

    @cached_property
    def activities_of_agent(self) -> DataLoader:
        return self._pages(ACTIVITIES_OF_AGENT)

    @cached_property
    def pending_approvals_of_tenant(self) -> DataLoader:
        return self._pages(PENDING_APPROVALS_OF_TENANT)

    @cached_property
    def pending_approvals_of_campaign(self) -> DataLoader:
        return self._pages(PENDING_APPROVALS_OF_CAMPAIGN)

    @cached_property
    def llm_calls_of_activity(self) -> DataLoader:
        return self._pages(LLM_CALLS_OF_ACTIVITY)

    # One-to-one relations

    def _one_per_owner(self, sql: str, build: Callable[[Any], Any]) -> DataLoader:
        """`sql` selects `owner_id` and the columns `build` reads, for owners `:ids`; at most
        one row each."""

        async def batch(ids: Sequence[uuid.UUID]) -> list[Any]:
            rows = await self.db.fetch(sql, {"tenant_id": self.tenant_id, "ids": list(ids)})
            found = {row["owner_id"]: build(row) for row in rows}
            return [found.get(owner_id) for owner_id in ids]

        return ScheduledLoader(batch, self.scheduler)

    @cached_property
    def latest_activity_of_deliverable(self) -> DataLoader:
        """Each deliverable's newest activity, with the activity's approval (or none) in the
        same statement, primed into `approval_of_activity`. The dashboard, the one reader of
        `latestActivity`, asks for both: one statement fewer per request, for one index
        lookup per activity."""
        approvals = self.approval_of_activity
        activity, approval = self.projection(shapes.ACTIVITY), self.projection(shapes.APPROVAL)
        prefixed = shapes.prefixed(approval.fields, APPROVAL_PREFIX)
        sql = f"""SELECT o.owner_id, p.*, {", ".join(f"a.{f} AS {c}" for f, c in prefixed)}
                FROM unnest(CAST(:ids AS uuid[])) AS o(owner_id)
                CROSS JOIN LATERAL (
                    SELECT {activity.columns} FROM activities t
                    WHERE t.tenant_id = :tenant_id AND t.deliverable_id = o.owner_id
                    ORDER BY t.created_at DESC, t.id DESC LIMIT 1
                ) p
                LEFT JOIN approvals a ON a.tenant_id = :tenant_id AND a.activity_id = p.id"""
        build_activity, build_approval = activity.build, approval.build

        async def batch(ids: Sequence[uuid.UUID]) -> list[t.Activity | None]:
            rows = await self.db.fetch(sql, {"tenant_id": self.tenant_id, "ids": list(ids)})
            found = {}
            for row in rows:
                activity = found[row["owner_id"]] = build_activity(row)
                approval = None
                if row[APPROVAL_PREFIX + "id"] is not None:
                    approval = build_approval(shapes.unprefixed(row, prefixed))
                approvals.prime(activity.row_id, approval)
            return [found.get(owner_id) for owner_id in ids]

        return ScheduledLoader(batch, self.scheduler)

    @cached_property
    def approval_of_activity(self) -> DataLoader:
        approval = self.projection(shapes.APPROVAL)
        return self._one_per_owner(
            f"SELECT t.activity_id AS owner_id, {approval.columns} FROM approvals t "
            "WHERE t.tenant_id = :tenant_id AND t.activity_id = ANY(:ids)",
            approval.build,
        )

    # Lists and counts

    @cached_property
    def agents_of_tenant(self) -> DataLoader:
        async def batch(ids: Sequence[uuid.UUID]) -> list[list[t.Agent]]:
            rows = await self.db.fetch(
                f"SELECT {shapes.AGENT_COLUMNS} FROM agents t "
                "WHERE t.tenant_id = :tenant_id LIMIT 100",
                {"tenant_id": self.tenant_id},
            )
            agents = sorted(
                (shapes.agent_from_row(row) for row in rows),
                key=lambda agent: AGENT_ROLE_ORDER[agent.role],
            )
            # The same agents by id: an activity's `agent` then needs no statement of its own.
            by_id = self.agent
            for agent in agents:
                by_id.prime(agent.row_id, agent)
            return [agents if tenant_id == self.tenant_id else [] for tenant_id in ids]

        return ScheduledLoader(batch, self.scheduler)

    @cached_property
    def pending_approval_count_of_tenant(self) -> DataLoader:
        return self._counts(
            "SELECT t.tenant_id AS owner_id, count(*) AS n FROM approvals t "
            "WHERE t.tenant_id = :tenant_id AND t.status = 'PENDING' GROUP BY t.tenant_id"
        )

    @cached_property
    def pending_approval_count_of_campaign(self) -> DataLoader:
        return self._counts(
            "SELECT t.campaign_id AS owner_id, count(*) AS n FROM approvals t "
            "WHERE t.tenant_id = :tenant_id AND t.status = 'PENDING' "
            "AND t.campaign_id = ANY(:ids) GROUP BY t.campaign_id"
        )

    def _counts(self, sql: str) -> DataLoader:
        """`sql` selects `owner_id` and `n` for owners `:ids`; a missing owner counts 0."""

        async def batch(ids: Sequence[uuid.UUID]) -> list[int]:
            rows = await self.db.fetch(sql, {"tenant_id": self.tenant_id, "ids": list(ids)})
            found = {row["owner_id"]: row["n"] for row in rows}
            return [found.get(owner_id, 0) for owner_id in ids]

        return ScheduledLoader(batch, self.scheduler)

    @cached_property
    def preferences_of_user(self) -> DataLoader:
        async def batch(user_ids: Sequence[uuid.UUID]) -> list[list[t.Preference]]:
            rows = await self.db.fetch(
                "SELECT user_id, key, value, updated_at FROM preferences "
                "WHERE user_id = ANY(:ids) ORDER BY key LIMIT 1000",
                {"ids": list(user_ids)},
            )
            found: dict[uuid.UUID, list[t.Preference]] = defaultdict(list)
            for row in rows:
                found[row["user_id"]].append(
                    t.Preference(key=row["key"], value=row["value"], updated_at=row["updated_at"])
                )
            return [found.get(user_id, []) for user_id in user_ids]

        return ScheduledLoader(batch, self.scheduler)

    @cached_property
    def tenant_overview(self) -> DataLoader:
        """(pending approvals, active campaigns, running activities) of the tenant."""

        async def batch(ids: Sequence[uuid.UUID]) -> list[tuple[int, int, int]]:
            rows = await self.db.fetch(
                """SELECT
                    (SELECT count(*) FROM approvals
                      WHERE tenant_id = :tenant_id AND status = 'PENDING') AS pending,
                    (SELECT count(*) FROM campaigns
                      WHERE tenant_id = :tenant_id AND status = 'ACTIVE') AS active,
                    (SELECT count(*) FROM activities
                      WHERE tenant_id = :tenant_id AND status = 'RUNNING') AS running""",
                {"tenant_id": self.tenant_id},
            )
            row = rows[0]
            counts = (row["pending"], row["active"], row["running"])
            return [counts for _ in ids]

        return ScheduledLoader(batch, self.scheduler)

    def _tenant_list(self, sql: str, build: Callable[[Any], Any]) -> DataLoader:
        async def batch(ids: Sequence[uuid.UUID]) -> list[list[Any]]:
            rows = await self.db.fetch(sql, {"tenant_id": self.tenant_id})
            items = [build(row) for row in rows]
            return [items for _ in ids]

        return ScheduledLoader(batch, self.scheduler)

    @cached_property
    def urgent_approvals(self) -> DataLoader:
        approval = self.projection(shapes.APPROVAL)
        return self._tenant_list(
            f"SELECT {approval.columns} FROM approvals t "
            "WHERE t.tenant_id = :tenant_id AND t.status = 'PENDING' AND t.risk_level = 'HIGH' "
            "ORDER BY t.expires_at, t.id LIMIT 5",
            approval.build,
        )

    @cached_property
    def recent_activities(self) -> DataLoader:
        activity = self.projection(shapes.ACTIVITY)
        return self._tenant_list(
            f"SELECT {activity.columns} FROM activities t "
            "WHERE t.tenant_id = :tenant_id ORDER BY t.created_at DESC, t.id DESC LIMIT 10",
            activity.build,
        )

    # Spend

    @cached_property
    def spend(self) -> DataLoader:
        async def batch(keys: Sequence[Any]) -> list[t.SpendSummary]:
            return await load_spend(self.db, self.tenant_id, keys)

        return ScheduledLoader(batch, self.scheduler)

    @cached_property
    def spend_report(self) -> DataLoader:
        async def batch(keys: Sequence[Any]) -> list[list[t.SpendBucket]]:
            return await load_spend_reports(self.db, self.tenant_id, keys)

        return ScheduledLoader(batch, self.scheduler)
