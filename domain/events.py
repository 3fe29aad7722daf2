"""Tenant events: their types and their positions in a tenant's log. The store records them
(domain/store/events.py) in the same transaction as the change they describe.

An event names its type and the objects it concerns; the live-events feature resolves those
objects when it delivers the event, so an event never carries stale copies.
`tenant_events` is an outbox: switchboard/live/relay.py moves its rows into the tenant's
Redis stream after they commit. (An activity's stream events need no call here: triggers
on `activities` write them, see migrations/versions/0005_live_outbox.py.)
"""

from __future__ import annotations

from domain.enums import TenantEventType

EVENT_TYPES = frozenset(TenantEventType)

Position = tuple[int, int]


def parse_position(value: str) -> Position:
    """An event's position in its log (a Redis stream entry ID, `<ms>-<seq>`) as a
    comparable pair; ValueError for anything else."""
    ms, sep, seq = value.partition("-")
    if not (sep and ms.isdigit() and seq.isdigit()) or len(value) > 42:
        raise ValueError(value)
    return int(ms), int(seq)
