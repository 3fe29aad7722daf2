"""What the tests of whole processes share (`switchboard serve`, a pytest run of its own):
finding the processes a run started, among them the embedded servers of a state folder,
and waiting, with a deadline, until none of them is left."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

import psutil

from tests.support.jobs import wait_for


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
