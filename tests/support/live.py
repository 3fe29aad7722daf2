"""What the live-events tests share: gateways on real ports (in this process, or as a
process of their own), and a websocket client speaking either subprotocol.

Waiting is always for a message or a condition, with a deadline that fails the test;
never a sleep as synchronisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

from switchboard.processes.supervisor import die_with_parent
from switchboard.settings import PROJECT_DIR
from tests.support.jobs import wait_for

CONTRACT = PROJECT_DIR / "contract/operations/subscriptions"
TENANT_EVENTS = (CONTRACT / "TenantEvents.graphql").read_text()
ACTIVITY_STREAM = (CONTRACT / "ActivityStream.graphql").read_text()
TRANSPORT_WS, LEGACY_WS = "graphql-transport-ws", "graphql-ws"
DEADLINE_S = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[str]:
    """Serve an app (its lifespan already running) on a real port; yields its ws URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await wait_for(started)
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        # As a stopping gateway process does (gateway_process.py): streams and sockets end
        # first, or uvicorn would wait for an open event stream forever.
        await app.state.live.going_away()
        server.should_exit = True
        await task


class GatewayProcess:
    """`uvicorn switchboard.app:create_app` in a process of its own, on the test's servers."""

    def __init__(self, database_url: str, redis_url: str, log: Path, **env: str) -> None:
        self.port = free_port()
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SWITCHBOARD_MODE": "test",
            **env,
        }
        command = [sys.executable, "-m", "uvicorn", "--factory", "switchboard.app:create_app"]
        command += ["--port", str(self.port), "--log-level", "warning"]
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_DIR,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(os.getpid()),  # never outlives a killed test run
            )

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    async def ready(self) -> None:
        async def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited: {self.log.read_text()[-2000:]}")
            try:
                async with httpx.AsyncClient() as http:
                    response = await http.get(f"http://127.0.0.1:{self.port}/healthz")
                    return response.status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(answers, timeout=60, interval=0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing flushed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class LiveClient:
    """One websocket connection speaking graphql-transport-ws (or the legacy protocol)."""

    def __init__(self, connection: ClientConnection, protocol: str) -> None:
        self.socket = connection
        self.protocol = protocol

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        url: str,
        token: str | None = None,
        protocol: str = TRANSPORT_WS,
        receive_buffer: int | None = None,
    ) -> AsyncIterator[LiveClient]:
        """`receive_buffer`: a small kernel receive buffer, for a client that reads slowly."""
        options: dict[str, Any] = {}
        if receive_buffer is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            host, port = url.split("//")[1].split("/")[0].split(":")
            sock.connect((host, int(port)))
            options["sock"] = sock
        async with connect(
            url,
            subprotocols=[protocol],  # type: ignore[list-item]
            max_queue=None,
            compression=None,
            **options,
        ) as connection:
            client = cls(connection, protocol)
            if token is not None:
                await client.init(token)
            yield client

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(orjson.dumps(message).decode())

    async def receive(self, timeout: float = DEADLINE_S) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.socket.recv(), timeout)
        return orjson.loads(raw)

    async def init(self, token: str) -> None:
        await self.send(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        )
        ack = await self.receive()
        assert ack["type"] == "connection_ack", ack
        if self.protocol == LEGACY_WS:
            assert (await self.receive())["type"] == "ka"

    async def subscribe(
        self, subscription_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables or {}}
        await self.send({"id": subscription_id, "type": kind, "payload": payload})

    async def next_data(self, timeout: float = DEADLINE_S) -> tuple[str, dict[str, Any]]:
        """The next `next` (or legacy `data`) message: (subscription id, data)."""
        message = await self.receive(timeout)
        assert message["type"] in ("next", "data"), message
        assert "errors" not in message["payload"], message
        return message["id"], message["payload"]["data"]

    async def closed(self, timeout: float = DEADLINE_S) -> tuple[int | None, str]:
        """Wait for the server to close; (code, reason). Messages before it are skipped."""
        with contextlib.suppress(Exception):
            while True:
                await asyncio.wait_for(self.socket.recv(), timeout)
        await asyncio.wait_for(self.socket.wait_closed(), timeout)
        received = self.socket.protocol.close_rcvd
        return (received.code, received.reason) if received else (None, "")
