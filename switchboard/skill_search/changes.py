"""The skills generation: one counter in Redis that every change to a skill bumps, and the
log of which skills each generation changed.

- `bump(redis, ids)` runs after the commit of any write to `skills` (mutations, the CLI,
  seeding): one Lua script INCRs `sb:skills:gen` and records each changed id in the sorted
  set `sb:skills:log` with the new generation as its score (`*` means "reload
  everything"). The log keeps the newest LOG_LIMIT entries; the generation of the newest
  entry it dropped is kept in `sb:skills:trimmed`, so a reader further behind than the log
  reaches knows to reload everything.
- `current(redis)` is the one GET a search makes to learn whether its process is behind.
- `since(redis, have, want)`: the ids changed after generation `have` up to `want`, or
  None when only a full reload will do (the log was trimmed past `have`, a `*` entry, or
  Redis lost the counter and it went backwards).
- The generation is also part of every cached result's key (cache.py), so a bump retires
  every cached result at once, on every instance.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from redis.asyncio import Redis

GEN_KEY = "sb:skills:gen"
LOG_KEY = "sb:skills:log"
TRIMMED_KEY = "sb:skills:trimmed"
LOG_LIMIT = 10_000
EVERYTHING = "*"

_BUMP = """
local gen = redis.call('INCR', KEYS[1])
for i = 1, #ARGV do redis.call('ZADD', KEYS[2], gen, ARGV[i]) end
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(KEYS[4])
if excess > 0 then
  local dropped = redis.call('ZRANGE', KEYS[2], 0, excess - 1, 'WITHSCORES')
  redis.call('SET', KEYS[3], dropped[#dropped])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
end
return gen
"""


async def bump(redis: Redis, ids: Iterable[uuid.UUID | str] | None = None) -> int:
    """A new generation recording `ids` as changed (None: everything); returns it."""
    members = [str(i) for i in ids] if ids is not None else [EVERYTHING]
    return int(await redis.eval(_BUMP, 4, GEN_KEY, LOG_KEY, TRIMMED_KEY, str(LOG_LIMIT), *members))


async def current(redis: Redis) -> int:
    return int(await redis.get(GEN_KEY) or 0)


async def since(redis: Redis, have: int, want: int) -> list[uuid.UUID] | None:
    if want < have:
        return None  # the counter went back (Redis lost it): nothing can be trusted
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(TRIMMED_KEY)
        pipe.zrangebyscore(LOG_KEY, f"({have}", want)
        trimmed, members = await pipe.execute()
    if trimmed is not None and int(float(trimmed)) > have:
        return None
    names = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
    if EVERYTHING in names:
        return None
    return [uuid.UUID(name) for name in names]
