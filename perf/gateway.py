"""A gateway for benchmarks: `switchboard serve` in a process of its own on a free port.

The benchmarks measure the gateway as people run it, so they start it the way the README
does and stop it the way Ctrl-C would (SIGINT: uvicorn shuts down, and `serve` stops the
worker and the embedded servers it started). Also the CPU time of a process, and of a server
with its children (PostgreSQL's backends), as the benchmarks read it, and the request the
executor benchmarks send: DashboardOverview as a tenant's marketer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SERVE = (sys.executable, "-m", "switchboard.cli", "serve")


def start_gateway(
    state_dir: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    *,
    serve: Sequence[str] = SERVE,
    extra: Sequence[str] = (),
    cwd: Path = REPO,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `switchboard serve` (or `serve`, a command that ends with it) with `extra`
    arguments, and wait until /healthz answers; returns (process, port). `cwd`: the
    checkout whose code runs (`python -m` imports from it first)."""
    port = free_port()
    environment = {**os.environ, **(env or {}), "SWITCHBOARD_STATE_DIR": str(state_dir)}
    command = [*serve, "--port", str(port), "--workers", str(workers), *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The gateway exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.TransportError:
            pass
        time.sleep(0.25)  # polling a process's start-up, not synchronising with it
    stop_gateway(process)
    raise RuntimeError(f"The gateway did not answer /healthz in {STARTUP_TIMEOUT_S:.0f} s")


def gateway_pid(process: subprocess.Popen[bytes]) -> int:
    """The pid of the (first) gateway process `serve` runs: uvicorn runs there, not in
    `serve` itself (switchboard/processes/supervisor.py), so its CPU and memory are the
    gateway's."""
    import psutil

    for child in psutil.Process(process.pid).children():
        if "switchboard.processes.gateway" in child.cmdline():
            return child.pid
    raise RuntimeError("`serve` runs no gateway process")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and all its children so far: the live ones' own, and what
    the exited ones left in its `children_*` times (PostgreSQL's postmaster and its
    backends, whose connections come and go)."""
    import psutil

    root = psutil.Process(pid)
    times = root.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in root.children(recursive=True):
        try:
            total += _on_cpu_s(child)
        except psutil.NoSuchProcess:
            continue  # exited between the listing and the read: counted once reaped
    return float(total)


def _on_cpu_s(process: Any) -> float:
    """A single-threaded process's time on a CPU: Linux's schedstat in nanoseconds where
    there is one (the ticks of `cpu_times` are 10 ms, coarse for a backend's few ms),
    else user + system."""
    try:
        return int(Path(f"/proc/{process.pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        times = process.cpu_times()
        return float(times.user + times.system)


def stop_gateway(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait(timeout=30)


def marketer_token(settings: Any, slug: str) -> str:
    """A dashboard token of the seeded tenant `slug`'s marketer, signed with `settings`."""
    from domain.ids import to_global_id
    from switchboard.devdata.seed import stable_id
    from switchboard.edge.auth import issue_token

    return issue_token(
        settings,
        to_global_id("User", stable_id("user", f"marketer@{slug}.example")),
        to_global_id("Tenant", stable_id(slug, "tenant")),
        "dashboard",
    )


def dashboard_overview_body(operation: Path) -> bytes:
    """The JSON body of DashboardOverview (`operation`, the contract's document) with this
    month's spend window."""
    import datetime as dt

    import orjson

    month = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return orjson.dumps(
        {
            "query": operation.read_text(),
            "variables": {
                "monthStart": month.isoformat(),
                "monthEnd": (month + dt.timedelta(days=32)).replace(day=1).isoformat(),
            },
        }
    )
