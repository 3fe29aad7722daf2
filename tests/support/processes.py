"""What the tests of whole processes share (`switchboard serve`, a pytest run of its own):
`Serve`, a `switchboard serve` in a process group of its own, and tokens for it; finding
the processes a run started, among them the embedded servers of a state folder,
and waiting, with a deadline, until none of them is left."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import psutil

from switchboard.edge.auth import issue_token
from switchboard.processes.supervisor import die_with_parent
from switchboard.settings import PROJECT_DIR, Settings
from tests.conftest import tenant_gid, user_gid
from tests.support.jobs import wait_for
from tests.support.live import free_port

# The token secret of the processes `Serve` starts (tokens for them are signed with it).
SETTINGS = Settings(jwt_secret="serve-process-test-secret-0123456789abcdef")
RESTARTS = re.compile(r'^switchboard_process_restarts_total\{process="job_worker"\} (\S+)$', re.M)
# Not inherited from the test run: `serve` starts or is given its own.
SERVER_ENV = ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "SWITCHBOARD_STOP_TIMEOUT_S")


def serve_token(slug: str, local: str = "marketer", audience: str = "dashboard") -> str:
    """A token of `<local>@<slug>.example` for the processes `Serve` starts."""
    return issue_token(SETTINGS, user_gid(slug, local), tenant_gid(slug), audience)


def alive(process: psutil.Process) -> bool:
    """Running, and not a zombie (exited, not yet reaped)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def servers_of(state_dir: Path) -> list[psutil.Process]:
    """The embedded servers (and their own processes) using this state folder: PostgreSQL
    names it on its command line, Valkey runs in it (even once it is deleted)."""
    folder = str(state_dir.resolve())
    found = []
    for process in psutil.process_iter(["name", "cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error):
            cwd = process.info["cwd"] or ""
            command = " ".join(process.info["cmdline"] or ())
            if (folder in command or cwd.startswith(folder)) and alive(process):
                found.append(process)
    return found


def in_groups(groups: Iterable[int]) -> list[psutil.Process]:
    """Live processes whose process group is one of `groups`."""
    wanted = set(groups)
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) in wanted and alive(process):
                found.append(process)
    return found


async def none_left(processes: Iterable[psutil.Process], timeout: float) -> None:
    """Wait until none of `processes` runs; fail naming those still there at `timeout`."""
    watched = list(processes)

    async def gone() -> bool:
        return not [p for p in watched if alive(p)]

    try:
        await wait_for(gone, timeout, interval=0.05)
    except AssertionError:
        left = [(p.pid, p.name()) for p in watched if alive(p)]
        raise AssertionError(f"still running after {timeout} s: {left}") from None


class Serve:
    """`python -m switchboard.cli serve` in a process group of its own, logging to a file."""

    def __init__(self, state_dir: Path, log: Path, *args: str, **env: str) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.log = log
        environment = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}
        environment.update(
            SWITCHBOARD_STATE_DIR=str(state_dir),
            SWITCHBOARD_MODE="development",
            SWITCHBOARD_JWT_SECRET=SETTINGS.jwt_secret,
            SWITCHBOARD_SIM_TOKEN_DELAY_MS="1",
            SWITCHBOARD_SIM_TOKENS_PER_TURN="12",
            SWITCHBOARD_STREAM_FLUSH_MS="20",
        )
        environment.update(env)
        command = [sys.executable, "-m", "switchboard.cli", "serve", "--port", str(self.port)]
        command += args
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_DIR,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,  # its own group: the test checks that nothing of it is left
                preexec_fn=die_with_parent(os.getpid()),
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    async def graphql(self, body: dict[str, Any], token: str) -> httpx.Response:
        """POST /graphql with `body` (query, variables, extensions) as the holder of `token`."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            return await http.post(
                "/graphql", json=body, headers={"authorization": f"Bearer {token}"}
            )

    @property
    def database_url(self) -> str:
        socket_dir = (self.state_dir / "postgres/postmaster.pid").read_text().splitlines()[4]
        return f"postgresql+asyncpg://postgres@/switchboard?host={socket_dir}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def job_workers(self) -> list[psutil.Process]:
        children = psutil.Process(self.process.pid).children()
        return [
            c
            for c in children
            if alive(c) and c.cmdline()[1:4] == ["-m", "switchboard.cli", "worker"]
        ]

    def tree(self) -> list[psutil.Process]:
        """serve and every process under it."""
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    async def ready(self, gateways: int = 1, job_workers: int = 1) -> None:
        """Every gateway process and job worker has said it is ready; /healthz answers."""

        async def started() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited:\n{self.output()[-4000:]}")
            output = self.output()
            if output.count("Application startup complete") < gateways:
                return False
            if output.count("worker ready") < job_workers:
                return False
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{self.url}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(started, timeout=120, interval=0.1)

    async def restarts(self) -> float:
        async with httpx.AsyncClient() as http:
            found = RESTARTS.search((await http.get(f"{self.url}/metrics")).text)
        assert found, "no switchboard_process_restarts_total for the job worker"
        return float(found.group(1))

    def stop(self) -> None:
        """What a test left running (it failed before its own stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
