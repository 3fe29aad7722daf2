"""PgBouncer in transaction mode in front of a PostgreSQL, for tests and benchmarks.

`PgBouncer.start(database_url)` writes a configuration into a temporary folder (every
database of the server behind it, `pool_mode = transaction`, `default_pool_size = 25`, the
production pool; auth_type trust with a userlist naming the URL's user), starts Debian's
`pgbouncer` (1.18 on Debian 12) on a free port in the foreground and waits until it accepts
connections; `url` is the same database through it, and the URL's user may read its
statistics (`SHOW STATS` on the `pgbouncer` database). `stop()` ends it (SIGTERM, then SIGKILL)
and removes the folder, so nothing is left running (nor when its starter dies: it gets
SIGTERM). PgBouncer refuses to run as root: as root it runs as the owner of the server's
socket folder, or as Debian's `postgres`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from switchboard.processes.supervisor import die_with_parent

BINARY = "/usr/sbin/pgbouncer"
POOL_SIZE = 25
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
# Startup parameters PgBouncer 1.18 would refuse ("unsupported startup parameter") and
# may drop instead: JDBC's and psql's usual extras. The gateway sends none of them in
# transaction mode (switchboard/infra/db.py), so a client sending them is a tool of an operator.
IGNORED_STARTUP_PARAMETERS = "extra_float_digits,options"


def available() -> bool:
    return Path(BINARY).exists()


def _unprivileged_user(host: str) -> int:
    """Whom PgBouncer runs as when started by root: the owner of the server's socket
    folder (only it may enter the embedded server's), else Debian's `postgres`."""
    if host.startswith("/"):
        owner = Path(host).stat().st_uid
        if owner != 0:
            return owner
    return pwd.getpwnam("postgres").pw_uid


def _socket_port(host: str) -> int:
    """The port a server's Unix socket is named after (`.s.PGSQL.<port>`), 5432 if none."""
    if host.startswith("/"):
        for socket_file in Path(host).glob(".s.PGSQL.*"):
            if socket_file.suffix != ".lock":
                return int(socket_file.name.rsplit(".", 1)[1])
    return 5432


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgBouncer:
    url: str  # the database of `start`'s URL, through PgBouncer (same driver, user, query)
    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, database_url: str, pool_size: int = POOL_SIZE) -> PgBouncer:
        if not available():
            raise RuntimeError(f"no {BINARY}: scripts/test installs it (apt-get install pgbouncer)")
        server = make_url(database_url)
        user = server.username or "postgres"
        # A Unix socket folder (the embedded server's URL: `?host=/its/folder`) or a host.
        host = server.host or str(server.query.get("host") or "127.0.0.1")
        folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        port = _free_port()
        run_as = _unprivileged_user(host) if os.geteuid() == 0 else None
        (folder / "userlist.txt").write_text(f'"{user}" "{server.password or ""}"\n')
        (folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={host} port={server.port or _socket_port(host)}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {folder / 'userlist.txt'}\n"
            f"stats_users = {user}\n"  # SHOW STATS on the `pgbouncer` database (benchmarks)
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 2000\n"
            f"ignore_startup_parameters = {IGNORED_STARTUP_PARAMETERS}\n"
            f"logfile = {folder / 'pgbouncer.log'}\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
        )
        if run_as is not None:
            for path in (folder, *folder.iterdir()):
                os.chown(path, run_as, -1)
        process = subprocess.Popen(
            [BINARY, str(folder / "pgbouncer.ini")],
            user=run_as,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C of the test run reaches it through stop() only
            preexec_fn=die_with_parent(os.getpid()),  # after the change of user: it stays
        )
        bouncer = cls(
            url=server.set(host="127.0.0.1", port=port, query={**server.query})
            .difference_update_query(["host"])
            .render_as_string(hide_password=False),
            port=port,
            folder=folder,
            process=process,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not bouncer._accepts():
            if process.poll() is not None or time.monotonic() > deadline:
                log = bouncer.log()
                bouncer.stop()
                raise RuntimeError(f"pgbouncer did not start:\n{log}")
            time.sleep(0.05)  # polling a process's start-up, not synchronising a test
        return bouncer

    def _accepts(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # PgBouncer's immediate shutdown
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        shutil.rmtree(self.folder, ignore_errors=True)
