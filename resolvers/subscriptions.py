"""The Subscription root: what a subscription asks for, and the event objects it is sent.

A subscription resolver checks who asks and what for, and answers a `Feed`: which log to
follow, for which tenant, from where. The live hub (switchboard/live/hub.py) follows the
feed and, for each event of it, executes the subscription's selection with the event built
here (`tenant_event`, `stream_event`) as the root value.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import strawberry

from domain import enums
from domain.access import require_member
from domain.errors import BadUserInput
from domain.events import parse_position
from domain.ids import parse_id_of, to_global_id
from domain.store.runs import activity_agent
from schema import types as t

AFTER_HELP = "`after` must be an event `id` this subscription sent (`<ms>-<seq>`)."


@dataclass(frozen=True, slots=True)
class Feed:
    """A subscription's source: the tenant's events (`activity_id` None) or one activity's
    stream, only `types` if given, after position `after` if given."""

    tenant_id: uuid.UUID
    activity_id: uuid.UUID | None = None
    types: frozenset[str] | None = None
    after: tuple[int, int] | None = None

    def __aiter__(self) -> AsyncIterator[Any]:
        # graphql-core requires a subscription's source to be async-iterable; a Feed is
        # followed by the live hub, which fans each event out to every subscriber at once.
        raise TypeError("A Feed is delivered by switchboard.live, not iterated.")


async def tenant_events(
    info: t.Info,
    types: list[t.TenantEventType] | None = None,
    after: str | None = None,
) -> AsyncIterator[t.TenantEvent]:
    principal = info.context.principal
    require_member(principal)
    chosen = frozenset(str(type_.value) for type_ in types) if types is not None else None
    return Feed(principal.tenant_id, None, chosen, _position(after))  # type: ignore[return-value]


async def activity_stream(
    info: t.Info, activity_id: strawberry.ID, after: str | None = None
) -> AsyncIterator[t.ActivityStreamEvent]:
    principal = info.context.principal
    row_id = parse_id_of("Activity", activity_id)
    unknown = BadUserInput("No activity has this ID.")
    if row_id is None:
        raise unknown
    agent_id = await activity_agent(info.context.db, principal.tenant_id, row_id)
    # Another tenant's activity is as unknown; an agent follows only its own activities.
    if agent_id is None or (principal.is_agent and agent_id != principal.subject_id):
        raise unknown
    return Feed(principal.tenant_id, row_id, None, _position(after))  # type: ignore[return-value]


def _position(after: str | None) -> tuple[int, int] | None:
    if after is None:
        return None
    try:
        return parse_position(after)
    except ValueError:
        raise BadUserInput(AFTER_HELP) from None


def tenant_event(event_id: str, payload: dict[str, Any]) -> t.TenantEvent:
    """The root value of a tenantEvents delivery, from the relay's payload (log.py)."""
    return t.TenantEvent(
        id=event_id,
        type=enums.TenantEventType(payload["type"]),
        occurred_at=dt.datetime.fromisoformat(payload["at"]),
        approval_id=_uuid(payload["approval"]),
        activity_id=_uuid(payload["activity"]),
        agent_id=_uuid(payload["agent"]),
        campaign_id=_uuid(payload["campaign"]),
    )


def stream_event(event_id: str, payload: dict[str, Any]) -> t.ActivityStreamEvent:
    """The root value of an activityStream delivery."""
    status = payload["status"]
    return t.ActivityStreamEvent(
        id=event_id,
        activity_id=to_global_id("Activity", uuid.UUID(payload["activity"])),
        kind=enums.ActivityStreamEventKind(payload["kind"]),
        text=payload["text"],
        status=enums.ActivityStatus(status) if status is not None else None,
        occurred_at=dt.datetime.fromisoformat(payload["at"]),
    )


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None
