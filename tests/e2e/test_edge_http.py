"""HTTP efficiency: gzip and brotli, ETag and 304, Server-Timing, and keep-alive."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
from collections.abc import AsyncIterator
from typing import Any

import brotli
import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from switchboard.app import create_app
from switchboard.edge.compression import CompressionMiddleware, choose_encoding
from switchboard.settings import Settings
from tests.conftest import Servers
from tests.support.edge import bearer, server_timing

LARGE = "{ tenant { campaigns(first: 20) { edges { node { id name goal status createdAt } } } } }"
SMALL = "{ viewer { id } }"


async def _raw_post(client: httpx.AsyncClient, query: str, headers: dict[str, str]) -> Any:
    """The response with its body as sent (not decoded by httpx)."""
    request = client.build_request("POST", "/graphql", json={"query": query}, headers=headers)
    response = await client.send(request, stream=True)
    raw = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return response, raw


async def test_large_responses_are_compressed(client: httpx.AsyncClient, token: Any) -> None:
    auth = bearer(token("acme"))
    plain, plain_body = await _raw_post(client, LARGE, auth | {"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and len(plain_body) > 1024
    expected = orjson.loads(plain_body)
    for accept, encoding, decode in (
        ("br", "br", brotli.decompress),
        ("gzip", "gzip", gzip.decompress),
        ("gzip, deflate, br", "br", brotli.decompress),
        ("br;q=0, gzip;q=0.5", "gzip", gzip.decompress),
        ("*", "br", brotli.decompress),
    ):
        response, body = await _raw_post(client, LARGE, auth | {"accept-encoding": accept})
        assert response.headers["content-encoding"] == encoding, accept
        assert int(response.headers["content-length"]) == len(body) < len(plain_body) * 0.6
        assert "accept-encoding" in response.headers["vary"].lower()
        assert orjson.loads(decode(body)) == expected
    # Under 1 KB: as it is.
    small, small_body = await _raw_post(client, SMALL, auth | {"accept-encoding": "gzip, br"})
    assert "content-encoding" not in small.headers and orjson.loads(small_body)["data"]


def test_the_encoding_follows_accept_encoding() -> None:
    assert choose_encoding("") is None
    assert choose_encoding("identity") is None
    assert choose_encoding("gzip") == "gzip"
    assert choose_encoding("gzip, br") == "br"
    assert choose_encoding("br;q=0") is None
    assert choose_encoding("*;q=0.1, br;q=0") == "gzip"
    assert choose_encoding("GZIP;Q=0.8") == "gzip"


@contextlib.asynccontextmanager
async def _uvicorn(app: Any) -> AsyncIterator[int]:
    """`app` served by uvicorn on 127.0.0.1 in this event loop; yields the port."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)  # connections wait in the backlog until uvicorn accepts them
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=30))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        await serving
        listener.close()


async def test_event_streams_streams_and_websockets_pass_through() -> None:
    chunk = b"data: " + b"x" * 2000 + b"\n\n"

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield chunk

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def chunked(request: Request) -> Response:
        async def stream() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"[" + b"1," * 1000 + b"1]"

        return StreamingResponse(stream(), media_type="application/json")

    async def whole(request: Request) -> Response:
        return Response(b"y" * 5000, media_type="text/plain")

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text() * 1000)
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/events", events),
            Route("/chunked", chunked),
            Route("/whole", whole),
            WebSocketRoute("/ws", echo),
        ],
        middleware=[Middleware(CompressionMiddleware, minimum_size=1024)],
    )
    async with _uvicorn(app) as port:
        base = f"http://127.0.0.1:{port}"
        encodings = {"accept-encoding": "gzip, br"}
        async with httpx.AsyncClient(base_url=base, headers=encodings) as http:
            assert (await http.get("/whole")).headers["content-encoding"] == "br"
            events_response = await http.get("/events")
            assert "content-encoding" not in events_response.headers
            assert events_response.content == chunk * 3
            assert "content-encoding" not in (await http.get("/chunked")).headers
        async with connect(
            f"ws://127.0.0.1:{port}/ws", additional_headers=encodings, compression=None
        ) as ws:
            await ws.send("hello ")
            assert await ws.recv() == "hello " * 1000


async def test_etag_and_304_on_get_queries(client: httpx.AsyncClient, token: Any) -> None:
    auth = bearer(token("acme"))
    first = await client.get("/graphql", params={"query": LARGE}, headers=auth)
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert tag.startswith('W/"') and first.headers["cache-control"] == "private, no-cache"
    assert "authorization" in first.headers["vary"].lower()
    same = await client.get(
        "/graphql", params={"query": LARGE}, headers=auth | {"if-none-match": tag}
    )
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == tag
    assert "content-encoding" not in same.headers
    listed = await client.get(
        "/graphql", params={"query": LARGE}, headers=auth | {"if-none-match": f'W/"x", {tag}'}
    )
    assert listed.status_code == 304
    other = await client.get(
        "/graphql", params={"query": LARGE}, headers=auth | {"if-none-match": 'W/"other"'}
    )
    assert other.status_code == 200 and other.headers["etag"] == tag
    # Another answer, another tag; POST and errors carry none.
    small = await client.get("/graphql", params={"query": SMALL}, headers=auth)
    assert small.headers["etag"] != tag
    post = await client.post("/graphql", json={"query": LARGE}, headers=auth)
    assert post.status_code == 200 and "etag" not in post.headers
    bad = await client.get("/graphql", params={"query": "{ nope }"}, headers=auth)
    assert bad.status_code == 200 and bad.json()["errors"] and "etag" not in bad.headers


async def test_server_timing_and_response_time(client: httpx.AsyncClient, token: Any) -> None:
    ok = await client.post("/graphql", json={"query": SMALL}, headers=bearer(token("acme")))
    metrics = server_timing(ok)
    assert {"auth", "doc", "parse", "exec", "total"} <= set(metrics), metrics
    assert all(float(metrics[name]) >= 0 for name in ("auth", "doc", "parse", "exec", "total"))
    assert ok.headers["x-response-time"].endswith("ms")
    refused = await client.post("/graphql", json={"query": SMALL})
    assert refused.status_code == 401 and "total" in server_timing(refused)
    assert refused.headers["x-response-time"].endswith("ms")


async def test_connections_are_kept_alive(servers: Servers, token: Any) -> None:
    """Two requests on one TCP connection to a real uvicorn server on 127.0.0.1."""
    settings = Settings(database_url=servers.database_url, redis_url=servers.redis_url, mode="test")
    async with _uvicorn(create_app(settings)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = orjson.dumps({"query": SMALL})
        request = (
            f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token('acme')}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        for _ in range(2):
            writer.write(request)
            await writer.drain()
            status = await reader.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            headers = {}
            while (line := await reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            assert headers.get("connection", "keep-alive").lower() != "close"
            payload = orjson.loads(await reader.readexactly(int(headers["content-length"])))
            assert payload["data"]["viewer"]["id"]
        writer.close()
        await writer.wait_closed()
