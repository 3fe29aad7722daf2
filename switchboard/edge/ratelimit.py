"""Rate limits: a sliding window per tenant and audience, or per IP without a valid token.

The window is a sliding log in Redis: one sorted set per subject (`rl:<subject>`) holds a
member per request accepted in the last `window_s`, scored by Redis's own clock; one Lua
script drops what left the window, counts, and adds the request only when under the
limit, atomically, so every gateway instance shares the same count. A refused request is
told when the oldest request in the window leaves it (`Retry-After`, whole seconds, at
least 1).

Subjects (limits per window, all configurable, see `Settings`):
- `t:<tenant>:dashboard`, `t:<tenant>:mobile`, `t:<tenant>:agent`: the tenant's users or
  agents with that token audience, together;
- `ip:<address>`: requests without a valid token (counted after authentication fails).

Redis down: fail open, but not unlimited. Each process then counts in its own memory
with the same algorithm and limits (so with N processes a subject gets up to N times its
limit while Redis is away), and the breaker keeps requests from waiting on Redis. Redis
back: counting returns to Redis; what was counted locally is forgotten.
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from switchboard.infra.breaker import RedisBreaker

# KEYS[1]: the subject's sorted set. ARGV: limit, window in ms, a unique member.
# Returns {allowed (1|0), remaining, retry after in ms}.
SLIDING_WINDOW_LUA = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
  return {1, limit - count - 1, 0}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local retry = window
if oldest[2] then retry = tonumber(oldest[2]) + window - now end
return {0, 0, retry}
"""
LOCAL_SUBJECTS = 10_000


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after_s: int  # 0 when allowed
    shared: bool  # counted in Redis (False: the in-process fallback)


class LocalWindow:
    """The same sliding log in this process's memory: the fallback while Redis is down."""

    def __init__(self, max_subjects: int = LOCAL_SUBJECTS) -> None:
        self.max_subjects = max_subjects
        self._logs: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, subject: str, limit: int, window_s: float) -> Decision:
        now = time.monotonic()
        log = self._logs.get(subject)
        if log is None:
            log = self._logs[subject] = deque()
            if len(self._logs) > self.max_subjects:
                self._logs.popitem(last=False)
        else:
            self._logs.move_to_end(subject)
        while log and log[0] <= now - window_s:
            log.popleft()
        if len(log) < limit:
            log.append(now)
            return Decision(True, limit - len(log), 0, shared=False)
        retry = log[0] + window_s - now
        return Decision(False, 0, max(1, math.ceil(retry)), shared=False)


class RateLimiter:
    def __init__(
        self,
        redis: Redis,
        breaker: RedisBreaker,
        limits: dict[str, int],
        window_s: float = 60.0,
    ) -> None:
        """`limits`: requests per window for `dashboard`, `mobile`, `agent` and `anonymous`."""
        self.redis = redis
        self.breaker = breaker
        self.limits = limits
        self.window_s = window_s
        self.local = LocalWindow()
        self._script = redis.register_script(SLIDING_WINDOW_LUA)
        self._member_prefix = os.urandom(6).hex()
        self._sequence = 0

    async def hit_tenant(self, tenant_hex: str, audience: str) -> Decision:
        return await self._hit(f"t:{tenant_hex}:{audience}", self.limits[audience])

    async def hit_ip(self, address: str) -> Decision:
        return await self._hit(f"ip:{address}", self.limits["anonymous"])

    async def _hit(self, subject: str, limit: int) -> Decision:
        if self.breaker.available():
            self._sequence += 1
            member = f"{self._member_prefix}:{self._sequence}"
            try:
                allowed, remaining, retry_ms = await self._script(
                    keys=[f"rl:{subject}"], args=[limit, int(self.window_s * 1000), member]
                )
            except (RedisError, OSError) as error:
                self.breaker.failed("rate limit", error)
            else:
                self.breaker.succeeded()
                retry_s = 0 if allowed else max(1, math.ceil(int(retry_ms) / 1000))
                return Decision(bool(allowed), int(remaining), retry_s, shared=True)
        return self.local.hit(subject, limit, self.window_s)
