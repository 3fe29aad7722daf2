"""What the job and agent-work tests share: a fresh tenant each, real worker processes
(`python -m tasks.worker`) pointed at the test database and Redis, and polling with a
deadline (never sleeps as synchronisation)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from domain.store.work import create_activity, create_deliverable
from switchboard.devdata.seed import quiet_tenants, seed_demo, stable_id
from switchboard.infra.db import UNNAMED_STATEMENTS
from switchboard.processes.supervisor import die_with_parent
from switchboard.settings import PROJECT_DIR
from tasks.queue import enqueue_activity

T = TypeVar("T")


async def wait_for(
    check: Callable[[], Awaitable[T]], timeout: float = 20.0, interval: float = 0.02
) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)


@dataclass
class Tenant:
    slug: str
    id: uuid.UUID
    database_url: str

    def agent(self, role: str) -> uuid.UUID:
        return stable_id(self.slug, "agent", role)


async def fresh_tenant(database_url: str, prefix: str, cap: Decimal | None = None) -> Tenant:
    """A seeded tenant of the test's own; its seeded queued and running work is cancelled
    and its agents are IDLE, so only what the test creates runs."""
    slug = f"{prefix}-{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(database_url, connect_args=UNNAMED_STATEMENTS)  # any pooler
    try:
        async with engine.begin() as conn:
            (tenant_id,) = await seed_demo(conn, {slug: (f"Test {slug}", cap)})
            await quiet_tenants(conn, [tenant_id])
    finally:
        await engine.dispose()
    return Tenant(slug=slug, id=tenant_id, database_url=database_url)


async def new_work(
    db: asyncpg.Connection | Any,
    tenant: Tenant,
    role: str,
    count: int = 1,
    priority: int = 5,
    kind: str = "BLOG_POST",
    campaign_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """`count` QUEUED activities of the tenant's agent of `role` (each on a deliverable of
    its own, in an ACTIVE campaign), created through domain/store/work.py as the mutations do."""
    engine = create_async_engine(tenant.database_url, connect_args=UNNAMED_STATEMENTS)
    ids = []
    try:
        async with engine.begin() as conn:
            if campaign_id is None:
                campaign_id = (
                    await conn.execute(
                        text(
                            "SELECT id FROM campaigns WHERE tenant_id = :t AND status = 'ACTIVE' "
                            "ORDER BY created_at LIMIT 1"
                        ),
                        {"t": tenant.id},
                    )
                ).scalar_one()
            for n in range(count):
                deliverable = await create_deliverable(
                    conn, tenant.id, campaign_id, f"Test work {n}", kind, None
                )
                row = await create_activity(
                    conn, tenant.id, deliverable["id"], role, priority, "Write it.", "MANUAL"
                )
                ids.append(row["id"])
    finally:
        await engine.dispose()
    return ids


async def enqueue(
    redis: Redis,
    tenant: Tenant,
    role: str,
    activity_id: uuid.UUID,
    priority: int,
    dedup_key: str | None = None,
) -> bool:
    return await enqueue_activity(
        redis,
        activity_id=activity_id,
        tenant_id=tenant.id,
        agent_id=tenant.agent(role),
        priority=priority,
        dedup_key=dedup_key,
    )


class Worker:
    """A `python -m tasks.worker` process serving only the given tenants."""

    def __init__(
        self,
        database_url: str,
        redis_url: str,
        tenants: list[Tenant],
        **env: object,
    ) -> None:
        self.log_path = Path(
            PROJECT_DIR / ".switchboard" / "test" / f"worker-{uuid.uuid4().hex[:8]}.log"
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SWITCHBOARD_WORKER_TENANTS": ",".join(str(t.id) for t in tenants),
            "SWITCHBOARD_SIM_TOKEN_DELAY_MS": "1",
            "SWITCHBOARD_SIM_TOKENS_PER_TURN": "12",
            "SWITCHBOARD_STREAM_FLUSH_MS": "20",
            "SWITCHBOARD_JOB_RETRY_BASE_S": "0.05",
            "SWITCHBOARD_JOB_LEASE_S": "3",
            "SWITCHBOARD_WORKER_POLL_S": "0.2",
            "SWITCHBOARD_WORKER_GRACE_S": "2",
            "SWITCHBOARD_APPROVAL_EXPIRY_INTERVAL_S": "0.3",
            "SWITCHBOARD_DB_POOL_SIZE": "4",
            "PYTHONFAULTHANDLER": "1",
        }
        environment.update({k.upper(): str(v) for k, v in env.items()})
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tasks.worker"],
            cwd=PROJECT_DIR,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(os.getpid()),  # never outlives a killed test run
        )

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    async def ready(self, timeout: float = 20.0) -> None:
        async def started() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited:\n{self.output()}")
            return "worker ready" in self.output()

        await wait_for(started, timeout)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGUSR1)  # the worker logs its tasks
                time.sleep(0.5)
                self.process.kill()
                self.process.wait()
        self.log.close()
        # pytest shows captured output for failing tests only; the file goes either way.
        print(f"--- worker {self.process.pid} ---\n{self.output()[-6000:]}")
        self.log_path.unlink(missing_ok=True)


async def set_agent(db: asyncpg.Connection, agent_id: uuid.UUID, **columns: Any) -> None:
    """Set an agent's columns straight in the database (`concurrency=2`, `status="PAUSED"`)."""
    sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(columns))
    await db.execute(f"UPDATE agents SET {sets} WHERE id = $1", agent_id, *columns.values())


async def starts(db: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many times each of these activities started: RUNNING statuses in its stream's
    outbox (activities that never started are left out)."""
    rows = await db.fetch(
        "SELECT activity_id, count(*) AS n FROM activity_stream_events "
        "WHERE activity_id = ANY($1::uuid[]) AND kind = 'STATUS' AND status = 'RUNNING' "
        "GROUP BY activity_id",
        ids,
    )
    return {r["activity_id"]: r["n"] for r in rows}


def max_overlap(intervals: list[tuple[Any, Any]]) -> int:
    """The most (start, end) intervals open at one moment."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in points:
        running += step
        peak = max(peak, running)
    return peak


async def activity_status(db: asyncpg.Connection, activity_id: uuid.UUID) -> str:
    return await db.fetchval("SELECT status FROM activities WHERE id = $1", activity_id)


async def statuses(db: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await db.fetch("SELECT id, status FROM activities WHERE id = ANY($1::uuid[])", ids)
    return {r["id"]: r["status"] for r in rows}


class FakeChatServer:
    """A small OpenAI-compatible chat-completions server on 127.0.0.1 for the runtime tests:
    the first `failures` requests get HTTP 500, the rest a streamed completion of `words`
    (server-sent events, usage in the last chunk)."""

    def __init__(self, words: list[str], failures: int = 0, usage: tuple[int, int] = (120, 7)):
        self.words = words
        self.failures = failures
        self.usage = usage
        self.requests: list[dict[str, Any]] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> FakeChatServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import orjson

        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            length = next(
                int(line.split(":", 1)[1])
                for line in lines
                if line.lower().startswith("content-length:")
            )
            body = orjson.loads(await reader.readexactly(length))
            self.requests.append({"path": lines[0].split()[1], "body": body})
            if len(self.requests) <= self.failures:
                message = b'{"error": "overloaded"}'
                writer.write(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(message)}\r\nconnection: close\r\n\r\n".encode()
                    + message
                )
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"connection: close\r\n\r\n"
                )
                for word in self.words:
                    chunk = {"choices": [{"index": 0, "delta": {"content": word}}]}
                    writer.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                    await writer.drain()
                    await asyncio.sleep(0.001)
                final = {
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": self.usage[0], "completion_tokens": self.usage[1]},
                }
                writer.write(b"data: " + orjson.dumps(final) + b"\n\ndata: [DONE]\n\n")
            await writer.drain()
        finally:
            writer.close()
