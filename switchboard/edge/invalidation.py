"""Invalidating the response cache: which changes invalidate which cached fields.

A write path calls `await invalidate(redis, tenant_id, *changes)` after its transaction
commits, with the tenant's event types (domain/events.py) or the extra change names
below. It bumps the tenant's generation of every affected group in one round trip; the
next read of those fields misses, on every instance, so a change shows at once (well
within the contract's one second).

Change → what it invalidates:
- APPROVAL_CREATED, APPROVAL_RESOLVED, ESCALATION_CREATED → mobileHome (the counts,
  urgentApprovals);
- ACTIVITY_STATUS_CHANGED, ACTIVITY_CREATED → mobileHome (runningActivityCount,
  recentActivities);
- AGENT_STATUS_CHANGED → mobileHome (the agents its lists show);
- CAMPAIGN_UPDATED (created, renamed, status) → mobileHome (activeCampaignCount, names)
  and spendReport (its CAMPAIGN labels);
- DELIVERABLE_UPDATED (created, renamed) → mobileHome (titles);
- BUDGET_UPDATED (the tenant's monthly cap) → mobileHome (monthlySpendCapUsd);
- SPEND_UPDATED, LLM_CALL_RECORDED → mobileHome (spendThisMonthUsd), spend, spendReport.

Two ways in:
- `invalidate(...)`, called by a write path after its commit (the only way for changes
  that record no tenant event: DELIVERABLE_UPDATED, BUDGET_UPDATED);
- `invalidate_on_commit(engine, redis)`, installed on the gateway's engine (and to be
  installed on any other process's engine that writes): every transaction that inserts
  into `tenant_events` (domain/events.py `record_event`) invalidates what its events
  affect once its connection is back in the pool, i.e. after the commit has completed
  (never before it, which would let a concurrent read cache the old data again). A
  rolled-back transaction invalidates nothing.

A change not in this list invalidates everything of the tenant: a new kind of change is
never silently stale. Tenant.spend, Tenant.spendReport and Query.mobileHome are the cached
fields (`switchboard.edge.response_cache.CACHED_FIELDS`).

Redis failing during an invalidation: the tenant's groups are remembered in this
process (`response_cache.pending`); while any are pending, this process reads around the
cache, and its next invalidation or cache read that reaches Redis bumps them first. Other
instances could serve an entry from before the change only between Redis coming back and
that bump (the next request to this process), never longer than the entry's TTL.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import TextClause

from switchboard.edge.response_cache import GROUPS, bump_generations

log = logging.getLogger(__name__)

HOME, SPEND = "home", "spend"
_RECORDED, _COMMITTED = "edge.recorded_events", "edge.committed_events"
INVALIDATES: dict[str, tuple[str, ...]] = {
    "APPROVAL_CREATED": (HOME,),
    "APPROVAL_RESOLVED": (HOME,),
    "ESCALATION_CREATED": (HOME,),
    "ACTIVITY_STATUS_CHANGED": (HOME,),
    "ACTIVITY_CREATED": (HOME,),
    "AGENT_STATUS_CHANGED": (HOME,),
    "CAMPAIGN_UPDATED": (HOME, SPEND),
    "DELIVERABLE_UPDATED": (HOME,),
    "BUDGET_UPDATED": (HOME,),
    "SPEND_UPDATED": (HOME, SPEND),
    "LLM_CALL_RECORDED": (HOME, SPEND),
}


def groups_for(changes: Iterable[str]) -> set[str]:
    groups: set[str] = set()
    for change in changes:
        groups.update(INVALIDATES.get(change, GROUPS))
    return groups


async def invalidate(redis: Redis, tenant_id: uuid.UUID, *changes: str) -> None:
    """Invalidate what `changes` affect in the tenant's cached responses. Never raises."""
    groups = groups_for(changes or ("*",))
    await bump_generations(redis, [(tenant_id.hex, group) for group in sorted(groups)])


class CommitHook:
    """The invalidations scheduled after commits; `drain()` waits for them (at shutdown)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


def invalidate_on_commit(engine: AsyncEngine, redis: Redis) -> CommitHook:
    """Invalidate after every committed transaction of `engine` that recorded events."""
    sync_engine = engine.sync_engine
    hook = CommitHook()

    @event.listens_for(sync_engine, "before_execute")
    def _recorded(conn: Any, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
        if not isinstance(clause, TextClause) or "tenant_events" not in clause.text:
            return
        if not clause.text.lstrip().upper().startswith("INSERT INTO TENANT_EVENTS"):
            return
        rows = [p for p in (*(multiparams or ()), params) if isinstance(p, dict)]
        found = conn.info.setdefault(_RECORDED, set())
        for row in rows:
            if isinstance(row.get("tenant_id"), uuid.UUID) and isinstance(row.get("type"), str):
                found.add((row["tenant_id"], row["type"]))

    @event.listens_for(sync_engine, "commit")
    def _committing(conn: Any) -> None:
        recorded = conn.info.pop(_RECORDED, None)
        if recorded:
            conn.info.setdefault(_COMMITTED, set()).update(recorded)

    @event.listens_for(sync_engine, "rollback")
    def _rolled_back(conn: Any) -> None:
        conn.info.pop(_RECORDED, None)

    @event.listens_for(sync_engine.pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info.pop(_RECORDED, None)
        committed = record.info.pop(_COMMITTED, None)
        if not committed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in an event loop (a synchronous script): nothing cached
            return
        task = loop.create_task(_invalidate_all(redis, committed))
        hook.tasks.add(task)
        task.add_done_callback(hook.tasks.discard)

    return hook


async def _invalidate_all(redis: Redis, changes: set[tuple[uuid.UUID, str]]) -> None:
    by_tenant: dict[uuid.UUID, list[str]] = {}
    for tenant_id, change in changes:
        by_tenant.setdefault(tenant_id, []).append(change)
    targets = [
        (tenant_id.hex, group)
        for tenant_id, kinds in by_tenant.items()
        for group in sorted(groups_for(kinds))
    ]
    await bump_generations(redis, targets)
