"""The event log in Redis Streams: stream keys, positions, publishing once, and replay.

- Each tenant's events are one stream (`sb:live:tenant:<hex>`), each activity's TOKEN and
  STATUS events another (`sb:live:activity:<hex>`). An event's `id` in the API is its entry
  ID in that stream (`<ms>-<seq>`), so `after` is a position in it.
- Streams keep 24 hours: every append trims entries older than that (XADD MINID, by age,
  not only by length), and a stream that gets no appends for 24 hours expires whole.
- Every append is also added to one firehose stream (`sb:live:all`), which each gateway
  process's hub reads with a single blocking XREAD; the firehose is capped by length, as
  it only has to cover a hub's reconnect.
- Publishing is idempotent: each outbox row has a dedup key (`sb:live:done:<table>:<id>`,
  kept an hour) set in the same Lua script as its XADD, so a relay that published and then
  crashed before marking the rows relayed publishes nothing twice when it runs again.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from domain.events import Position, parse_position

RETENTION_S = 24 * 3600
FIREHOSE = "sb:live:all"
FIREHOSE_MAXLEN = 100_000
DEDUP_TTL_S = 3600
REPLAY_PAGE = 500


def tenant_stream(tenant_id: uuid.UUID) -> str:
    return f"sb:live:tenant:{tenant_id.hex}"


def activity_stream(activity_id: uuid.UUID) -> str:
    return f"sb:live:activity:{activity_id.hex}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One event of one stream, with its payload as the relay wrote it."""

    stream: str
    id: str
    position: Position
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What the relay publishes for one outbox row."""

    dedup_key: str
    stream: str
    payload: dict[str, Any]


# KEYS: the firehose, then (dedup key, stream) per event. ARGV: the oldest ms kept, the
# retention and dedup TTLs in s, the firehose's length cap, then each event's payload.
_PUBLISH = """
local published = 0
for n = 5, #ARGV do
  local dedup, stream = KEYS[2 * (n - 4)], KEYS[2 * (n - 4) + 1]
  if redis.call('SET', dedup, '1', 'NX', 'EX', ARGV[3]) then
    local id = redis.call('XADD', stream, 'MINID', '~', ARGV[1], '*', 'e', ARGV[n])
    redis.call('EXPIRE', stream, ARGV[2])
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 's', stream, 'i', id, 'e', ARGV[n])
    published = published + 1
  end
end
return published
"""


class EventLog:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._publish = redis.register_script(_PUBLISH)

    async def publish(self, events: Sequence[Outgoing], now_ms: int) -> int:
        """Append each event to its stream and the firehose, in order, unless it was
        published before; returns how many were new."""
        if not events:
            return 0
        keys: list[str] = [FIREHOSE]
        payloads: list[bytes] = []
        for event in events:
            keys += [event.dedup_key, event.stream]
            payloads.append(orjson.dumps(event.payload))
        args = [now_ms - RETENTION_S * 1000, RETENTION_S, DEDUP_TTL_S, FIREHOSE_MAXLEN]
        return int(await self._publish(keys=keys, args=[*args, *payloads]))

    async def publish_replicated(
        self, events: Sequence[Outgoing], now_ms: int, replicas: int, wait_ms: int
    ) -> tuple[int, int]:
        """`publish`, then WAIT until `replicas` replicas hold it (or `wait_ms` passed);
        returns how many were new and how many replicas acknowledged. One pipeline: WAIT
        counts the writes of its own connection only."""
        if not events:
            return 0, replicas
        keys: list[str] = [FIREHOSE]
        payloads: list[bytes] = []
        for event in events:
            keys += [event.dedup_key, event.stream]
            payloads.append(orjson.dumps(event.payload))
        args = [now_ms - RETENTION_S * 1000, RETENTION_S, DEDUP_TTL_S, FIREHOSE_MAXLEN]
        async with self.redis.pipeline(transaction=False) as pipe:
            await self._publish(keys=keys, args=[*args, *payloads], client=pipe)
            pipe.wait(replicas, wait_ms)
            published, acked = await pipe.execute()
        return int(published), int(acked)

    async def replay(self, stream: str, after: Position) -> AsyncIterator[Entry]:
        """The stream's events after `after`, oldest first, a page at a time."""
        start = f"({after[0]}-{after[1]}"
        while True:
            rows = await self.redis.xrange(stream, min=start, max="+", count=REPLAY_PAGE)
            for entry_id, fields in rows:
                yield entry(stream, entry_id.decode(), fields[b"e"])
            if len(rows) < REPLAY_PAGE:
                return
            start = "(" + rows[-1][0].decode()


def beyond_retention(after: Position, now_ms: int) -> bool:
    """Whether a replay from `after` would start before what the log keeps (24 hours), so
    events after it may be gone. Streams are trimmed by age only, never by length, so a
    position younger than that has everything after it still in its stream. `0-0` asks for
    whatever the log keeps."""
    return after != (0, 0) and after[0] < now_ms - RETENTION_S * 1000


def entry(stream: str, entry_id: str, raw_payload: bytes) -> Entry:
    return Entry(stream, entry_id, parse_position(entry_id), orjson.loads(raw_payload))
