"""A TCP proxy in front of a real server that a test can cut and restore.

Cutting closes every open connection and stops listening (new connections are refused), as
a server that went away does; restoring listens on the same port again. So a test sees a
real outage of PostgreSQL or Redis without stopping the server the rest of the suite shares.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from sqlalchemy import make_url

Upstream = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


def postgres_upstream(database_url: str) -> Upstream:
    """How to reach the server of a SQLAlchemy URL: its Unix socket or host and port."""
    url = make_url(database_url)
    socket_dir = (parse_qs(url.render_as_string().partition("?")[2]).get("host") or [None])[0]
    port = url.port or 5432
    if socket_dir:
        return lambda: asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{port}")
    return lambda: asyncio.open_connection(url.host or "127.0.0.1", port)


def redis_upstream(redis_url: str) -> Upstream:
    """How to reach the Redis server of a `redis://host:port/db` URL."""
    url = make_url(redis_url.replace("redis://", "redis+tcp://", 1))
    return lambda: asyncio.open_connection(url.host or "127.0.0.1", url.port or 6379)


def through_proxy(database_url: str, port: int) -> str:
    """The same database, reached through the proxy on 127.0.0.1:`port`."""
    url = make_url(database_url)
    return url.set(host="127.0.0.1", port=port, query={}).render_as_string(hide_password=False)


class FaultProxy:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._pipe, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()

    async def _pipe(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            server_in, server_out = await self.upstream()
        except OSError:
            client_out.close()
            return
        self._writers.update((client_out, server_out))
        await asyncio.gather(self._copy(client_in, server_out), self._copy(server_in, client_out))
        self._writers.difference_update((client_out, server_out))

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        writer.close()
