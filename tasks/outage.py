"""Outages of the servers a worker depends on (PostgreSQL, Redis), and how it rides them out.

- `unreachable(error)` is the one classification: the server an error says cannot be
  reached now (refused, reset, closed, shutting down or starting up, timed out), or None
  when the error is anything else (a bug, a bad row, a failing LLM: the job's own failure).
- `Outage` is one server as this process sees it. The first error that shows it unreachable
  starts the outage with ONE log line; a single probe (PING, SELECT 1) then tries again
  after 0.1 s, doubling, at most `EARLY_CAP_S` apart during the outage's first `EARLY_S`
  (a restart or a Sentinel failover is over within a few seconds, and what waits should
  go on the moment it is) and `CAP_S` after that; once it answers (and stays answering for
  `CONFIRM_S`) ONE line ends the outage, with how long it lasted and what was skipped
  meanwhile. Callers never retry on their own: they wait for the server to be back.
- `Outages.run` is the retry path every caller uses: run a step, and on an outage wait for
  its server and run it again, as often as it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from redis.exceptions import AuthenticationError, AuthorizationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc

from switchboard.infra.db import unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
Probe = Callable[[], Awaitable[object]]

POSTGRES = "PostgreSQL"
REDIS = "Redis"
BASE_S = 0.1  # the first wait before probing again
CAP_S = 2.0  # the longest wait between probes
EARLY_S = 10.0  # the first seconds of an outage, probed more often:
EARLY_CAP_S = 0.25  # at most this far apart
# A server must keep answering this long after its probe succeeded for the outage to end;
# falling over again within it continues the same outage (one start line, one end line).
CONFIRM_S = 2.0

# Only errors of these kinds are looked into for a database outage, so that an error of
# another kind whose cause is an OSError (an LLM server refusing a connection, wrapped by
# the runtime) is never taken for one.
_DATABASE_ERRORS = (exc.SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def unreachable(error: BaseException) -> str | None:
    """POSTGRES or REDIS when `error` says that server cannot be reached now; else None."""
    if isinstance(error, BaseExceptionGroup):  # anyio task groups wrap what they carry
        servers = {unreachable(inner) for inner in error.exceptions}
        if None in servers:
            return None
        return POSTGRES if POSTGRES in servers else REDIS
    if isinstance(error, AuthenticationError | AuthorizationError):
        return None  # a configuration error: waiting would not mend it
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return REDIS
    if isinstance(error, _DATABASE_ERRORS) and unavailable(error):
        return POSTGRES
    return None


class Outage:
    """One server's reachability: up, or down since when and with what skipped meanwhile."""

    def __init__(
        self,
        server: str,
        probe: Probe,
        *,
        base_s: float = BASE_S,
        cap_s: float = CAP_S,
        confirm_s: float = CONFIRM_S,
        early_s: float = EARLY_S,
        early_cap_s: float = EARLY_CAP_S,
    ) -> None:
        self.server = server
        self.base_s, self.cap_s, self.confirm_s = base_s, cap_s, confirm_s
        self.early_s, self.early_cap_s = early_s, early_cap_s
        self._probe = probe
        self._up = asyncio.Event()
        self._up.set()
        self._recovery: asyncio.Task[None] | None = None
        self._since = 0.0
        self.skipped: Counter[str] = Counter()
        self.ended = 0  # how many outages of this server have ended in this process

    @property
    def down(self) -> bool:
        return not self._up.is_set()

    def failed(self, error: BaseException, skipped: str | None = None) -> None:
        """`error` showed the server unreachable: the outage starts, unless it is on already."""
        if not self.down:
            self._up.clear()
            # Back only a moment ago (self._recovery still confirms it): the same outage
            # goes on, and its probe keeps backing off.
            if self._recovery is None:
                self._start(error)
        self.skip(skipped)

    def _start(self, error: BaseException) -> None:
        self._since = time.monotonic()
        log.warning(
            "%s unreachable (%s: %s); waiting for it (probes %.1f s apart, doubling to "
            "%.2f s for %.0f s, then to %.1f s)",
            self.server,
            type(error).__name__,
            (str(error).splitlines() or [""])[0][:200],
            self.base_s,
            self.early_cap_s,
            self.early_s,
            self.cap_s,
            extra={"outage": self.server},
        )
        # A context of its own: not the trace of the job whose step happened to fail first.
        self._recovery = asyncio.create_task(
            self._recover(), name=f"outage:{self.server}", context=contextvars.Context()
        )

    def skip(self, what: str | None) -> None:
        """Count something not done because the server is down (reported at the end)."""
        if what and (self.down or self._recovery is not None):
            self.skipped[what] += 1

    async def wait(self, skipped: str | None = None) -> None:
        """Return once the server answers again (at once when it is up)."""
        if self.down:
            self.skip(skipped)
            await self._up.wait()

    def next_delay(self, delay: float, since_start_s: float) -> float:
        """The wait after a probe `delay` after the previous one, `since_start_s` into the
        outage: doubled, capped low in the first seconds."""
        cap = self.early_cap_s if since_start_s < self.early_s else self.cap_s
        return min(delay * 2, max(cap, self.base_s))

    async def _recover(self) -> None:
        delay = self.base_s
        back_at = time.monotonic()
        while True:
            await asyncio.sleep(delay)
            delay = self.next_delay(delay, time.monotonic() - self._since)
            try:
                await asyncio.wait_for(self._probe(), timeout=max(self.cap_s, 1.0))
            except Exception as error:  # still down, whatever the probe says
                log.debug("%s probe failed: %r", self.server, error)
                continue
            back_at = time.monotonic()
            self._up.set()
            await asyncio.sleep(self.confirm_s)
            if not self.down:
                break
        skipped = ", ".join(f"{n} {what}" for what, n in sorted(self.skipped.items()))
        log.warning(
            "%s reachable again after %.1f s; skipped meanwhile: %s",
            self.server,
            back_at - self._since,
            skipped or "nothing",
            extra={"outage": self.server, "outage_s": round(back_at - self._since, 3)},
        )
        self.skipped.clear()
        self.ended += 1
        self._recovery = None

    async def close(self) -> None:
        """Stop probing (the process is stopping; whatever still waits is cancelled)."""
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
            self._recovery = None


class Outages:
    """The worker's two servers, and the retry path every step that uses them goes through."""

    def __init__(self, database: Outage, redis: Outage) -> None:
        self.database = database
        self.redis = redis

    def of(self, error: BaseException) -> Outage | None:
        server = unreachable(error)
        if server is None:
            return None
        return self.database if server == POSTGRES else self.redis

    def failed(self, error: BaseException, skipped: str | None = None) -> Outage | None:
        """The outage `error` shows (now started or going on), or None for any other error."""
        outage = self.of(error)
        if outage is not None:
            outage.failed(error, skipped)
        return outage

    @property
    def down(self) -> bool:
        return self.database.down or self.redis.down

    async def back(self) -> None:
        """Return once both servers answer."""
        while self.down:
            await self.database.wait()
            await self.redis.wait()

    def skip(self, what: str) -> None:
        for outage in (self.database, self.redis):
            if outage.down:
                outage.skip(what)

    async def run(
        self, what: str, call: Callable[[], Awaitable[T]], uses: Outage | None = None
    ) -> T:
        """`call()` until it succeeds: after an outage error, once its server is back (waiting
        first for `uses`, the server the call needs, when it is known to be down). Any other
        error propagates."""
        while True:
            if uses is not None:
                await uses.wait(what)
            try:
                return await call()
            except Exception as error:
                outage = self.failed(error, what)
                if outage is None:
                    raise
                await outage.wait()

    async def close(self) -> None:
        await self.database.close()
        await self.redis.close()
