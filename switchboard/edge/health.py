"""Health: `/healthz` for liveness and `/readyz` for readiness.

- `/healthz` answers `ok` whenever the process's event loop does; it checks nothing else,
  so a database outage never gets a healthy process restarted.
- `/readyz` answers 200 when the database answers, Redis answers and the database's schema
  is at the newest migration (`switchboard.infra.migrate.is_at_head`), else 503. The body is
  JSON: `status` (`ready` / `not ready`), each check's `ok`, its time in ms and, on
  failure, the exception's type only (never a URL or a message that could hold one), and
  `checked_at`. A ready answer is cached for `ttl_s` (SWITCHBOARD_READINESS_CACHE_S, 10 s)
  so that probes from many places cost one check per window, a failed one for a second at
  most so that recovery shows at once; concurrent probes share one check. Each check gives
  up after `timeout_s`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from switchboard.infra.db import Database
from switchboard.infra.migrate import is_at_head


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


class Readiness:
    def __init__(
        self,
        db: Database,
        redis: Redis,
        database_url: str,
        ttl_s: float = 10.0,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db, self.redis, self.database_url = db, redis, database_url
        self.ttl_s, self.timeout_s, self.clock = ttl_s, timeout_s, clock
        self.checks_run = 0
        self._report: dict[str, Any] | None = None
        self._expires = float("-inf")
        self._lock = asyncio.Lock()

    async def report(self) -> dict[str, Any]:
        """The cached readiness report, checked again once it is `ttl_s` old."""
        if self._report is not None and self.clock() < self._expires:
            return self._report
        async with self._lock:
            if self._report is None or self.clock() >= self._expires:
                self._report = await self._check()
                self._expires = self.clock() + self._report["cached_for_s"]
            return self._report

    async def endpoint(self, request: Request) -> Response:
        report = await self.report()
        return JSONResponse(
            report,
            status_code=200 if report["status"] == "ready" else 503,
            headers={"cache-control": "no-store"},
        )

    async def _check(self) -> dict[str, Any]:
        self.checks_run += 1
        database, redis, migrations = await asyncio.gather(
            self._timed(self._database),
            self._timed(self._redis),
            self._timed(self._migrations),
        )
        checks = {"database": database, "redis": redis, "migrations": migrations}
        ready = all(c["ok"] for c in checks.values())
        return {
            "status": "ready" if ready else "not ready",
            "checks": checks,
            "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            # A failure is kept a second at most, so that recovery shows at once.
            "cached_for_s": self.ttl_s if ready else min(self.ttl_s, 1.0),
        }

    async def _timed(self, check: Callable[[], Awaitable[bool]]) -> dict[str, Any]:
        started = time.perf_counter()
        outcome: dict[str, Any]
        try:
            ok = await asyncio.wait_for(check(), self.timeout_s)
            outcome = {"ok": ok}
        except TimeoutError:
            outcome = {"ok": False, "error": "timeout"}
        except Exception as error:
            outcome = {"ok": False, "error": type(error).__name__}
        outcome["ms"] = round((time.perf_counter() - started) * 1000, 2)
        return outcome

    async def _database(self) -> bool:
        rows = await self.db.fetch("SELECT 1")
        return rows[0][0] == 1

    async def _redis(self) -> bool:
        return bool(await self.redis.ping())

    async def _migrations(self) -> bool:
        return await is_at_head(self.db.engine, self.database_url)
