"""Invalidating the response cache: which changes invalidate which cached fields.

A change is a tenant event type (domain/events.py) or ACTIVITY_STATUS_CHANGED for an
activity's STATUS stream row (a new activity's first status included). Invalidating bumps
the tenant's generation of every affected group in one round trip; the next read of those
fields misses, on every instance.

Change → what it invalidates:
- APPROVAL_CREATED, APPROVAL_RESOLVED, ESCALATION_CREATED → mobileHome (the counts,
  urgentApprovals);
- ACTIVITY_STATUS_CHANGED → mobileHome (runningActivityCount, recentActivities);
- AGENT_STATUS_CHANGED → mobileHome (the agents its lists show);
- CAMPAIGN_UPDATED (created, renamed, status, budget) → mobileHome (activeCampaignCount,
  names) and spendReport (its CAMPAIGN labels);
- SPEND_UPDATED → mobileHome (spendThisMonthUsd), spend, spendReport.

One way in, whoever made the change: the outbox relay (switchboard/live/relay.py) sees
every committed tenant event and activity status of every process (gateways, job workers,
operators' commands), and calls `invalidate()` with them as it publishes them, woken by the
commit's notification: a change shows within milliseconds on every instance, and a rolled
back transaction, which left no outbox row, invalidates nothing. The relay's pass does not
complete until the bump has reached Redis, so an invalidation is retried with its events.

A change not in this list invalidates everything of the tenant: a new kind of change is
never silently stale. Tenant.spend, Tenant.spendReport and Query.mobileHome are the cached
fields (`switchboard.execution.response_cache.CACHED_FIELDS`).

Redis failing during an invalidation: the tenant's groups are remembered in this
process (`response_cache.pending`); while any are pending, this process reads around the
cache, and its next invalidation or cache read that reaches Redis bumps them first. Other
instances could serve an entry from before the change only between Redis coming back and
that bump (the next request to this process), never longer than the entry's TTL.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from switchboard.execution.response_cache import GROUPS, bump_generations

HOME, SPEND = "home", "spend"
INVALIDATES: dict[str, tuple[str, ...]] = {
    "APPROVAL_CREATED": (HOME,),
    "APPROVAL_RESOLVED": (HOME,),
    "ESCALATION_CREATED": (HOME,),
    "ACTIVITY_STATUS_CHANGED": (HOME,),
    "AGENT_STATUS_CHANGED": (HOME,),
    "CAMPAIGN_UPDATED": (HOME, SPEND),
    "SPEND_UPDATED": (HOME, SPEND),
}


def groups_for(changes: Iterable[str]) -> set[str]:
    groups: set[str] = set()
    for change in changes:
        groups.update(INVALIDATES.get(change, GROUPS))
    return groups


async def invalidate(redis: Redis, changes: Iterable[tuple[str, str]]) -> bool:
    """Invalidate what each (tenant hex, change) affects in that tenant's cached responses.
    False when Redis could not be reached (the groups are kept pending, see above)."""
    by_tenant: dict[str, set[str]] = {}
    for tenant_hex, change in changes:
        by_tenant.setdefault(tenant_hex, set()).add(change)
    targets = [
        (tenant_hex, group)
        for tenant_hex, kinds in by_tenant.items()
        for group in sorted(groups_for(kinds))
    ]
    return await bump_generations(redis, targets)
