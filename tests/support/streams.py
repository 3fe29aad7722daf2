"""Clients of the HTTP event streams, for the live-events tests: SSE (graphql-sse's wire
format, both modes) and Apollo's multipart subscriptions, over a real connection.

Each reads what the server wrote, as it arrives, with a deadline per read; never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

DEADLINE_S = 15.0
MULTIPART_ACCEPT = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json"


@dataclass
class SSEEvent:
    event: str | None
    id: str | None
    data: Any


class SSEStream:
    """One open `text/event-stream` response, read event by event (heartbeats counted)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.heartbeats = 0

    async def next(self, timeout: float = DEADLINE_S) -> SSEEvent | None:
        """The next event; None when the server ends the stream."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> SSEEvent | None:
        fields: dict[str, str] = {}
        async for line in self.lines:
            if line == "":
                if fields:
                    raw = fields.get("data", "")
                    data = orjson.loads(raw) if raw.strip() else None
                    return SSEEvent(fields.get("event"), fields.get("id"), data)
                continue
            if line.startswith(":"):
                self.heartbeats += 1
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        return None

    async def data(self, timeout: float = DEADLINE_S) -> tuple[str | None, dict[str, Any]]:
        """The next `next` event that carries data: (its id, its data)."""
        event = await self.next(timeout)
        assert event is not None and event.event == "next", event
        payload = event.data.get("payload", event.data) if "payload" in event.data else event.data
        assert "errors" not in payload, payload
        return event.id, payload["data"]

    async def rest(self, timeout: float = DEADLINE_S) -> list[SSEEvent]:
        """Every event until the server ends the stream."""
        events = []
        while (event := await self.next(timeout)) is not None:
            events.append(event)
        return events


@contextlib.asynccontextmanager
async def sse(
    base: str,
    token: str | None,
    payload: dict[str, Any] | None = None,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    expect: int = 200,
) -> AsyncIterator[SSEStream]:
    """A distinct-mode stream (or, with a reservation token in `headers`, the single
    connection); fails unless the server answers `expect`."""
    sent = {"accept": "text/event-stream", **(headers or {})}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    async with (
        httpx.AsyncClient(base_url=base, timeout=DEADLINE_S) as http,
        http.stream(
            method,
            "/graphql/stream",
            json=payload if method == "POST" else None,
            params=params,
            headers=sent,
        ) as response,
    ):
        if response.status_code != expect:
            await response.aread()
            raise AssertionError(f"{response.status_code}: {response.text}")
        yield SSEStream(response)


class MultipartStream:
    """One open multipart subscription response, read part by part."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.chunks = response.aiter_text()
        self.buffer = ""
        self.heartbeats = 0
        self.ended = False

    async def next(self, timeout: float = DEADLINE_S) -> dict[str, Any] | None:
        """The next part that is not a heartbeat; None after the closing boundary."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> dict[str, Any] | None:
        boundary = "\r\n--graphql"
        while True:
            first = self.buffer.find(boundary)
            second = self.buffer.find(boundary, first + 1) if first >= 0 else -1
            if first >= 0 and self.buffer[first + len(boundary) :].startswith("--"):
                self.ended = True
                return None
            if second >= 0:
                part = self.buffer[first + len(boundary) : second]
                self.buffer = self.buffer[second:]
                body = orjson.loads(part.split("\r\n\r\n", 1)[1])
                if body == {}:
                    self.heartbeats += 1
                    continue
                return body
            try:
                self.buffer += await self.chunks.__anext__()
            except StopAsyncIteration:
                return None

    async def data(self, timeout: float = DEADLINE_S) -> dict[str, Any]:
        part = await self.next(timeout)
        assert part is not None and "errors" not in part and part["payload"], part
        assert "errors" not in part["payload"], part
        return part["payload"]["data"]


@contextlib.asynccontextmanager
async def multipart(
    base: str, token: str | None, payload: dict[str, Any], expect: int = 200
) -> AsyncIterator[MultipartStream]:
    headers = {"accept": MULTIPART_ACCEPT}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    async with (
        httpx.AsyncClient(base_url=base, timeout=DEADLINE_S) as http,
        http.stream("POST", "/graphql", json=payload, headers=headers) as response,
    ):
        if response.status_code != expect:
            await response.aread()
            raise AssertionError(f"{response.status_code}: {response.text}")
        yield MultipartStream(response)


def http_base(ws_url: str) -> str:
    return ws_url.replace("ws://", "http://").removesuffix("/graphql")
