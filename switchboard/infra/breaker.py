"""A circuit breaker for Redis, shared by the edge components of one gateway process.

When a Redis call fails, the caller reports it with `failed()`, and for `cooldown_s`
afterwards `available()` says no: rate limiting, the response cache and APQ lookups go
their Redis-less ways at once instead of each waiting for a connection timeout. After
the cool-down the next request tries Redis again (and, if it answers, `succeeded()`
closes the breaker).
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class RedisBreaker:
    def __init__(self, cooldown_s: float = 2.0) -> None:
        self.cooldown_s = cooldown_s
        self._open_until = 0.0
        self.failures = 0

    def available(self) -> bool:
        return time.monotonic() >= self._open_until

    def failed(self, where: str, error: BaseException) -> None:
        if self.available():
            log.warning("Redis unavailable (%s: %s); skipping it", where, type(error).__name__)
        self.failures += 1
        self._open_until = time.monotonic() + self.cooldown_s

    def succeeded(self) -> None:
        self._open_until = 0.0
