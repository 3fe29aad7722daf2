"""The hub: one Redis reader per gateway process, fanning events out to local subscribers.

The reader follows the firehose (log.py) with one blocking XREAD and skips the events of
streams nobody here follows. The rest are rendered and delivered:

- Subscribers with the same document, the same variables (but the root field's own
  arguments, like `after`), the same tenant and the same kind of principal form a group. An
  event is executed once per group, through loaders made for that event only (fresh data,
  one tenant), with the group's plan (`switchboard.execution`, made at its first event),
  serialised once, and handed to each member. A thousand dashboards on one
  tenant cost one execution per event, not a thousand.
- Handing over never waits: each connection has a bounded send queue, and one that is full
  closes its connection (websocket.py), so a slow consumer never slows the others and
  never grows memory without bound.
- The events of one read are rendered concurrently and delivered in order.
- A subscriber's position only moves forward: an event at or before it is skipped. That is
  what joins a replay (`after`) to the live events without a gap or a duplicate: the
  subscriber is registered first and holds live events aside while the replay runs, then
  takes those the replay did not reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from graphql import ExecutionResult
from graphql.execution import Executor

from domain.access import Principal
from domain.events import Position
from resolvers.context import RequestContext
from resolvers.subscriptions import Feed, stream_event, tenant_event
from switchboard.execution.executor import for_schema
from switchboard.execution.plan import OperationPlan
from switchboard.infra.redis import redis_reader
from switchboard.live import log as event_log
from switchboard.live.log import Entry, EventLog
from switchboard.observability import live as observed
from switchboard.settings import Settings

if TYPE_CHECKING:
    from switchboard.bootstrap import Services  # wired at the top (bootstrap.py)

log = logging.getLogger(__name__)

READ_COUNT = 500
BLOCK_MS = 5_000
REPLAY_CONCURRENCY = 32
MAX_HELD = 10_000  # live events a replaying subscriber may hold aside


class Outbox(Protocol):
    """Where a subscriber's messages go: its websocket connection (websocket.py) or its
    stream (stream.py: SSE and multipart); `position` is the event's, for SSE's `id:`."""

    def send_next(self, subscription_id: str, payload: str, position: Position) -> None: ...

    def overflow(self, reason: str) -> None: ...


Render = Callable[[ExecutionResult], dict[str, Any]]


@dataclass(eq=False, slots=True)
class Group:
    """Subscribers that an event renders identically for."""

    stream: str
    tenant_hex: str
    executor: Executor
    principal: Principal
    operation: str | None
    members: dict[Subscriber, None] = field(default_factory=dict)
    plan: OperationPlan | str | None = None  # made at the first event (switchboard.execution)


@dataclass(eq=False, slots=True)
class Subscriber:
    outbox: Outbox
    id: str
    feed: Feed
    group: Group | None = None
    last: Position = (0, 0)
    held: list[tuple[Position, str]] | None = None  # live events held during a replay

    def wants(self, entry: Entry) -> bool:
        types = self.feed.types
        return types is None or entry.payload.get("type") in types

    def deliver(self, position: Position, payload: str) -> None:
        if self.held is not None:
            if len(self.held) >= MAX_HELD:
                self.outbox.overflow("too many events waiting during the replay")
                return
            self.held.append((position, payload))
            return
        if position <= self.last:
            return
        self.last = position
        self.outbox.send_next(self.id, payload, position)


def stream_of(feed: Feed) -> str:
    if feed.activity_id is not None:
        return event_log.activity_stream(feed.activity_id)
    return event_log.tenant_stream(feed.tenant_id)


def root_of(entry: Entry) -> Any:
    if entry.stream.startswith("sb:live:activity:"):
        return stream_event(entry.id, entry.payload)
    return tenant_event(entry.id, entry.payload)


class Hub:
    def __init__(
        self, services: Services, settings: Settings, render: Render, planned: bool = True
    ) -> None:
        self.services = services
        self.planned = planned  # False: every event runs on graphql-core (SWITCHBOARD_EXECUTOR)
        self.log = EventLog(services.redis)
        # Its own connection: XREAD blocks longer than the request path's short timeouts.
        # A replica's under Sentinel: an entry it delivers has been replicated, so a
        # failover cannot take it back and publish it again under another id.
        self.reader = redis_reader(
            settings, socket_connect_timeout=2, socket_timeout=BLOCK_MS / 1000 + 5
        )
        self.render_payload = render
        self.streams: dict[str, dict[Hashable, Group]] = {}
        self._task: asyncio.Task[None] | None = None

    # Lifetime

    def start(self) -> None:
        self._task = asyncio.create_task(self._read(), name="live-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.reader.aclose()

    # Subscribers

    async def add(
        self,
        subscriber: Subscriber,
        group_key: Hashable,
        make_group: Callable[[str], Group],
    ) -> None:
        """Follow the subscriber's feed: replay from `after` if given, then live."""
        stream = stream_of(subscriber.feed)
        groups = self.streams.setdefault(stream, {})
        group = groups.get(group_key)
        if group is None:
            group = groups[group_key] = make_group(stream)
        group.members[subscriber] = None
        subscriber.group = group
        observed.opened(group.operation)
        after = subscriber.feed.after
        if after is None:
            return
        subscriber.last = after
        subscriber.held = []
        try:
            await self._replay(subscriber, group, stream, after)
        finally:
            held, subscriber.held = subscriber.held or [], None
            for position, payload in held:
                subscriber.deliver(position, payload)

    def remove(self, subscriber: Subscriber) -> None:
        group = subscriber.group
        if group is None or subscriber not in group.members:
            return
        del group.members[subscriber]
        observed.closed(group.operation)
        if not group.members:
            groups = self.streams.get(group.stream, {})
            for key, candidate in list(groups.items()):
                if candidate is group:
                    del groups[key]
            if not groups:
                self.streams.pop(group.stream, None)

    async def _replay(self, subscriber: Subscriber, group: Group, stream: str, after: Position):
        if event_log.beyond_retention(after, int(time.time() * 1000)):
            raise ReplayGap
        batch: list[Entry] = []
        async for entry in self.log.replay(stream, after):
            if entry.payload.get("t") == group.tenant_hex and subscriber.wants(entry):
                batch.append(entry)
            if len(batch) >= REPLAY_CONCURRENCY:
                await self._replay_batch(subscriber, group, batch)
                batch = []
        await self._replay_batch(subscriber, group, batch)

    async def _replay_batch(self, subscriber: Subscriber, group: Group, batch: list[Entry]):
        payloads = await asyncio.gather(*(self.render(group, root_of(e)) for e in batch))
        for entry, payload in zip(batch, payloads, strict=True):
            if entry.position > subscriber.last:
                subscriber.last = entry.position
                subscriber.outbox.send_next(subscriber.id, payload, entry.position)
        observed.delivered(group.operation, len(batch))

    # Rendering

    async def render(self, group: Group, root: Any) -> str:
        """The event's `payload` for the group's members, executed with fresh loaders."""
        planned = for_schema(group.executor.schema)
        if group.plan is None:
            group.plan = planned.event_plan(group.executor) if self.planned else "disabled"
        context = RequestContext.for_principal(group.principal, self.services)
        try:
            result = await planned.execute_event(group.executor, group.plan, root, context)
        finally:
            context.loaders.close()
        return orjson.dumps(self.render_payload(result)).decode()  # type: ignore[arg-type]

    # The reader

    async def _read(self) -> None:
        last = await self._tail()
        failures = 0
        while True:
            try:
                answer = await self.reader.xread(
                    {event_log.FIREHOSE: last}, count=READ_COUNT, block=BLOCK_MS
                )
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis away: retry, resuming from `last`
                failures += 1
                if failures == 1:  # once per outage
                    log.warning("live hub cannot read the firehose (%s); retrying", error)
                await asyncio.sleep(min(0.05 * 2**failures, 2.0))  # back-off, not a sync
                continue
            entries: list[Entry] = []
            for _, rows in answer or ():
                for entry_id, fields in rows:
                    last = entry_id.decode()
                    stream = fields[b"s"].decode()
                    if stream in self.streams:
                        entries.append(event_log.entry(stream, fields[b"i"].decode(), fields[b"e"]))
            if entries:
                try:
                    await self._fan_out(entries)
                except Exception:
                    log.exception("live hub failed to fan out %d events", len(entries))

    async def _tail(self) -> str:
        failures = 0
        while True:
            try:
                newest = await self.reader.xrevrange(event_log.FIREHOSE, count=1)
                return newest[0][0].decode() if newest else "0-0"
            except Exception as error:
                failures += 1
                if failures == 1:  # once per outage
                    log.warning("live hub cannot reach Redis (%s); retrying", error)
                await asyncio.sleep(0.5)  # back-off while Redis is away

    async def _fan_out(self, entries: list[Entry]) -> None:
        jobs: list[tuple[Entry, Group]] = []
        for entry in entries:
            for group in list(self.streams.get(entry.stream, {}).values()):
                if entry.payload.get("t") != group.tenant_hex:
                    continue  # never another tenant's event, whatever the key said
                if any(member.wants(entry) for member in group.members):
                    jobs.append((entry, group))
        if not jobs:
            return
        payloads = await asyncio.gather(
            *(self.render(group, root_of(entry)) for entry, group in jobs),
            return_exceptions=True,
        )
        for (entry, group), payload in zip(jobs, payloads, strict=True):
            if isinstance(payload, BaseException):
                log.error("could not render event %s", entry.id, exc_info=payload)
                continue
            sent = 0
            for member in list(group.members):
                if member.wants(entry):
                    member.deliver(entry.position, payload)
                    sent += 1
            observed.delivered(group.operation, sent)
        handed: set[tuple[str, str]] = set()
        for entry, _ in jobs:
            if (entry.stream, entry.id) not in handed:
                handed.add((entry.stream, entry.id))
                observed.handed_over(entry.payload["at"])


class ReplayGap(Exception):
    """Events after the requested position were trimmed (older than 24 hours)."""
