"""Pooled connections that the raw reads keep checked out between statements.

A read statement (`Database.fetch` of an SQL string) used to check a connection out of
SQLAlchemy's pool and return it: about 60 us of CPU a statement on this stack (the pool's
bookkeeping, its checkout and checkin events, two greenlet switches and the event loop's
work around them), more than asyncpg's own work for a small statement and some 8% of a
DashboardOverview. So a read that is done hands its connection to the next read instead:
at most `limit` connections wait here, each for at most `keep_s` seconds, then go back to
the pool, which still opens, counts, times out and closes every connection. For the pool's
gauges and counters a kept connection is idle, as if returned, and taking it is a
checkout (`observer`: observability/database.py).

A caller that would wait for a pooled connection gets a kept one's instead
(`release_oldest`, from `ObservedPool`). A connection that failed while kept (the server
restarted, say) makes every kept one suspect: they are invalidated, and the read that found
out runs again on a connection from the pool (reads are safe to run twice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from sqlalchemy.util import greenlet_spawn

log = logging.getLogger(__name__)


class Observer(Protocol):
    def kept(self, connection: Any) -> None: ...
    def taken(self, connection: Any) -> None: ...
    def dropped(self, connection: Any) -> None: ...


class KeptConnections:
    def __init__(self, limit: int, keep_s: float, observer: Observer) -> None:
        self.limit = limit
        self.keep_s = keep_s
        self.observer = observer
        self._idle: list[tuple[Any, float]] = []  # (pooled connection, kept since), newest last
        self._sweep: asyncio.TimerHandle | None = None
        self._returning: set[asyncio.Task[None]] = set()  # stale ones on their way back

    def take(self) -> Any | None:
        """The most recently kept connection, or None (check one out of the pool)."""
        if not self._idle:
            return None
        connection, since = self._idle.pop()
        if time.monotonic() - since > self.keep_s:  # the oldest lie below: all are stale
            self._idle.append((connection, since))
            self._give_back(self._idle)
            self._idle = []
            return None
        self.observer.taken(connection)
        return connection

    def keep(self, connection: Any) -> bool:
        """Keep `connection` for the next read; False when enough are kept (the caller
        returns it to the pool)."""
        if len(self._idle) >= self.limit:
            return False
        self._idle.append((connection, time.monotonic()))
        self.observer.kept(connection)
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(self.keep_s, self._swept)
        return True

    def release_oldest(self) -> bool:
        """Return the longest-kept connection to the pool at once, for a caller the pool
        would otherwise make wait (`ObservedPool`): kept connections never hold up a write.
        Runs inside the pool's checkout, in a greenlet."""
        if not self._idle:
            return False
        connection, _ = self._idle.pop(0)
        self.observer.dropped(connection)
        connection.close()
        return True

    def invalidate_all(self) -> None:
        """Drop every kept connection: one failed, so the others are suspect."""
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            self.observer.dropped(connection)
            connection.invalidate()  # outside a greenlet: terminates without waiting

    async def release_all(self) -> None:
        """Return every kept connection to the pool (before the pool is disposed)."""
        idle, self._idle = self._idle, []
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        await self._close(idle)
        if self._returning:
            await asyncio.gather(*self._returning, return_exceptions=True)

    def _swept(self) -> None:
        """Every `keep_s` while connections are kept: return the stale ones."""
        self._sweep = None
        now = time.monotonic()
        stale = [entry for entry in self._idle if now - entry[1] > self.keep_s]
        if stale:
            self._idle = [entry for entry in self._idle if now - entry[1] <= self.keep_s]
            self._give_back(stale)
        if self._idle:
            self._sweep = asyncio.get_running_loop().call_later(self.keep_s, self._swept)

    def _give_back(self, entries: list[tuple[Any, float]]) -> None:
        task = asyncio.get_running_loop().create_task(self._close(entries))
        self._returning.add(task)
        task.add_done_callback(self._returning.discard)

    async def _close(self, entries: list[tuple[Any, float]]) -> None:
        for connection, _ in entries:
            self.observer.dropped(connection)
            try:
                await greenlet_spawn(connection.close)  # back to the pool
            except Exception:  # one that cannot be returned is the pool's to replace
                log.warning("a kept database connection could not be returned", exc_info=True)
