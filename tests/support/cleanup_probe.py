"""A test run that ends badly on purpose, for tests/e2e/test_suite_cleanup.py, which runs it in a
pytest session of its own (the suite never collects it: no `test_` prefix).

It starts a worker process on the run's embedded servers and leaves it running, then either
fails (CLEANUP_PROBE=fail) or waits until the outer test sends the run SIGTERM
(CLEANUP_PROBE=sigterm). Either way nothing of the run may remain afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from switchboard.infra.embedded import EmbeddedServices
from switchboard.infra.migrate import upgrade_to_head_async
from tests.support.jobs import Worker, wait_for


async def test_leaves_a_worker_running(embedded: EmbeddedServices) -> None:
    await upgrade_to_head_async(embedded.database_url)
    worker = Worker(embedded.database_url, embedded.redis_url, [])
    await worker.ready()
    report = {"worker": worker.process.pid, "worker_log": str(worker.log_path)}
    Path(os.environ["CLEANUP_PROBE_OUT"]).write_bytes(orjson.dumps(report))
    if os.environ["CLEANUP_PROBE"] == "fail":
        raise AssertionError("failing on purpose, with a worker still running")

    async def never() -> bool:
        return False

    await wait_for(never, timeout=120)  # the outer test's SIGTERM comes first
