"""A test run leaves nothing running, however it ends: a pytest session of its own
(tests/support/cleanup_probe.py, with embedded servers of its own under a fresh state folder)
starts a worker process and then fails, or is stopped by SIGTERM while a test runs;
afterwards neither the worker nor the run's PostgreSQL nor its Valkey is left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import psutil
import pytest

from switchboard.processes.supervisor import die_with_parent
from switchboard.settings import PROJECT_DIR
from tests.support.jobs import wait_for
from tests.support.processes import none_left, servers_of

EXIT_FAILED, EXIT_INTERRUPTED = 1, 2  # pytest's exit codes


@pytest.fixture
def folder() -> Iterator[Path]:
    # Not under pytest's temporary folder: a concurrent pytest run makes its root private
    # again, and the embedded PostgreSQL's user would lose the way to its data.
    path = Path(tempfile.mkdtemp(prefix="switchboard-cleanup-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("ending", ["fail", "sigterm"])
async def test_a_run_leaves_nothing_running(ending: str, folder: Path) -> None:
    report, log = folder / "probe.json", folder / "run.log"
    state_dir = folder / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        SWITCHBOARD_TEST_STATE_DIR=str(state_dir),
        CLEANUP_PROBE=ending,
        CLEANUP_PROBE_OUT=str(report),
    )
    probe = "tests/support/cleanup_probe.py"
    command = [sys.executable, "-m", "pytest", probe, "-p", "no:cacheprovider"]
    with log.open("wb") as out:
        run = subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(os.getpid()),
        )
    try:

        async def worker_started() -> bool:
            assert run.poll() is None or report.exists(), log.read_text()[-3000:]
            return report.exists()

        await wait_for(worker_started, timeout=120, interval=0.1)
        started = orjson.loads(report.read_bytes())
        processes = [psutil.Process(started["worker"]), *servers_of(state_dir)]
        assert len(processes) >= 3, processes  # the worker, PostgreSQL and Valkey
        if ending == "sigterm":
            run.send_signal(signal.SIGTERM)

        async def ended() -> bool:
            return run.poll() is not None

        await wait_for(ended, timeout=60, interval=0.1)
        output = log.read_text()
        assert run.returncode == (EXIT_FAILED if ending == "fail" else EXIT_INTERRUPTED), output
        await none_left(processes, timeout=5)
        assert not servers_of(state_dir), output
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if report.exists():  # the log of the worker the probe left on purpose
            Path(orjson.loads(report.read_bytes())["worker_log"]).unlink(missing_ok=True)
