"""What several hosts share when Switchboard runs beyond one machine, for the many-hosts test
(tests/e2e/test_two_hosts.py) and perf/bench_live.py's `--hosts`.

`SharedServers.start()` runs, each of the test's own:
- a PostgreSQL primary (`DedicatedPostgres`, tests/support/faults.py) with the database
  `switchboard` migrated and the demo tenants seeded (their seeded QUEUED and RUNNING work
  cancelled, so that only what a test dispatches runs);
- a streaming replica of it (`StreamingReplica`, tests/support/replica.py);
- PgBouncer 1.18 in transaction mode in front of the primary (tests/support/pgbouncer.py);
- a Valkey primary, a replica and three Sentinels (`SentinelCluster`, tests/support/sentinel.py).

`host_env()` is all a host (`switchboard serve`) is told about them: DATABASE_URL through
PgBouncer with SWITCHBOARD_DB_POOLER=transaction, DATABASE_DIRECT_URL for migrations,
DATABASE_REPLICA_URLS, and REDIS_SENTINELS with REDIS_SENTINEL_SERVICE (REDIS_URL unset).
`processes()` lists every server process, to check that none is left after `close()`.
Blocking calls (`close`): from async code run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import psutil
from sqlalchemy.ext.asyncio import create_async_engine

from switchboard.devdata.seed import quiet_tenants, seed_demo
from tests.support.faults import DedicatedPostgres
from tests.support.pgbouncer import PgBouncer
from tests.support.processes import servers_of
from tests.support.replica import StreamingReplica
from tests.support.sentinel import SentinelCluster

DATABASE = "switchboard"


@dataclass
class SharedServers:
    primary: DedicatedPostgres
    direct_url: str  # the database on the primary itself (migrations, the tests' own checks)
    replica: StreamingReplica
    bouncer: PgBouncer
    sentinels: SentinelCluster

    @classmethod
    async def start(cls) -> SharedServers:
        """Start them all. The primary's initdb runs in a thread meanwhile the Sentinels
        start here: Valkey and PgBouncer get SIGTERM when the *thread* that started them
        ends (`die_with_parent`: Linux ties PR_SET_PDEATHSIG to the thread), so they are
        started on the caller's thread, never in a pool's."""
        primary: DedicatedPostgres | None = None
        cluster: SentinelCluster | None = None
        replica: StreamingReplica | None = None
        bouncer: PgBouncer | None = None
        initdb = asyncio.ensure_future(asyncio.to_thread(DedicatedPostgres))
        try:
            try:
                cluster = SentinelCluster().start()  # blocks this thread only
            finally:
                primary = await initdb
            direct_url = await primary.database(DATABASE)
            engine = create_async_engine(direct_url)
            try:
                async with engine.begin() as conn:
                    await quiet_tenants(conn, await seed_demo(conn))
            finally:
                await engine.dispose()
            replica = await asyncio.to_thread(StreamingReplica, primary)
            bouncer = PgBouncer.start(direct_url)
        except BaseException:
            started = [s for s in (primary, cluster, replica, bouncer) if s is not None]
            await asyncio.to_thread(_close, started)
            raise
        return cls(primary, direct_url, replica, bouncer, cluster)

    def host_env(self) -> dict[str, str]:
        """The variables of a host (a `switchboard serve` and its job workers)."""
        return {
            "DATABASE_URL": self.bouncer.url,
            "DATABASE_DIRECT_URL": self.direct_url,
            "DATABASE_REPLICA_URLS": self.replica.url(DATABASE),
            "SWITCHBOARD_DB_POOLER": "transaction",
            **self.sentinels.env(),
        }

    def processes(self) -> list[psutil.Process]:
        """Every process of these servers (PostgreSQL's backends run in their data folder)."""
        found = [*servers_of(self.primary.folder), *servers_of(self.replica.folder)]
        for pid in (self.bouncer.process.pid, *(p.pid for p in self.sentinels.processes.values())):
            with contextlib.suppress(psutil.NoSuchProcess):
                found.append(psutil.Process(pid))
        return found

    def close(self) -> None:
        """Stop everything (the pooler and the replica before the primary) and remove the
        folders."""
        _close([self.primary, self.replica, self.bouncer, self.sentinels])


def _close(servers: list[object]) -> None:
    """Stop `servers` in the reverse order of their start, every one even if one fails."""
    failed: list[BaseException] = []
    for server in reversed(servers):
        try:
            server.stop() if isinstance(server, PgBouncer) else server.close()  # type: ignore[attr-defined]
        except Exception as error:
            failed.append(error)
    if failed:
        raise failed[0]
