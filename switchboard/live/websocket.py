"""GraphQL subscriptions over websocket at /graphql: the connection core.

Two subprotocols, chosen by the client's offer, each in a module with only its framing:
- `graphql-transport-ws` (the graphql-ws library), graphql_transport_ws.py:
  connection_init → connection_ack, subscribe → next… / error, complete, ping ↔ pong;
- `graphql-ws` (legacy subscriptions-transport-ws), graphql_ws.py:
  connection_init → connection_ack + ka, start → data… / error, stop, connection_terminate.
Here, whatever the protocol: the send queue and its writer, authentication and admission
(through the same path as HTTP, edge/admission.py via subscribe.py), the subscriptions of
a connection, and closing.

The token comes in connection_init's payload (`{"authorization": "Bearer <JWT>"}`) and
scopes every subscription of the connection to its tenant. A subscription's document goes
through the same edge as over HTTP: persisted queries (mobile tokens send manifest ids
only), parsing and validation once per process, operation limits and the rate limit.

Close codes (graphql-transport-ws's, used for both protocols):

| code | when |
| --- | --- |
| 4400 | a malformed message: not JSON, no `type`, an unknown type, a bad `id` or payload |
| 4401 | subscribe before connection_ack; no valid token in connection_init; the token |
|      | expired (reconnect with a new token and resume with `after`) |
| 4406 | no subprotocol the server speaks |
| 4408 | no connection_init within `live_init_timeout_s` |
| 4409 | a subscribe with the `id` of a subscription still running |
| 4429 | a second connection_init |
| 1001 | the server is stopping (`going_away`): reconnect and resume with `after` |
| 1009 | a message larger than `max_body_bytes` |
| 1013 | the client reads too slowly: `live_send_queue` messages wait (resume with `after`) |

A subscription the server cannot start (a bad document, a bad argument, an unknown
activity, a replay older than the log) gets an `error` message with the contract's codes;
the connection and its other subscriptions carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from domain.access import Principal
from domain.errors import DomainError
from domain.events import Position
from switchboard.live.graphql_transport_ws import GraphQLTransportWS
from switchboard.live.graphql_ws import GraphQLWS
from switchboard.live.hub import Subscriber
from switchboard.live.subscribe import CannotSubscribe, LiveSubscriptions
from switchboard.live.ws_protocol import Closed, WireProtocol

if TYPE_CHECKING:
    from switchboard.bootstrap import Services  # wired at the top (bootstrap.py)

log = logging.getLogger(__name__)

# In order of preference, when a client offers both.
PROTOCOLS: tuple[type[WireProtocol], ...] = (GraphQLTransportWS, GraphQLWS)
MAX_ID_LENGTH = 128


class LiveEndpoint:
    """The websocket route; one `Connection` per socket."""

    def __init__(self, services: Services, subscriptions: LiveSubscriptions) -> None:
        # The one live path (subscribe.py): the edge's admission, then the hub.
        self.settings = services.settings
        self.services = services
        self.authenticator = services.authenticator
        self.hub = services.hub
        self.subscriptions = subscriptions
        self.connections: set[Connection] = set()
        self.streams: list[Any] = []  # SSE and multipart endpoints, stopped with the sockets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # An ASGI app rather than a Starlette endpoint: frames go straight to the server's
        # `send`, past two wrappers a frame would otherwise cross (a quarter of a delivery's
        # CPU was the Python path of each frame; perf/README.md, live events).
        connection = Connection(self, WebSocket(scope, receive, send), send)
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)

    async def going_away(self) -> None:
        """The server is stopping: close every connection with 1001, so that its client
        reconnects (here once the server is back, or to another instance) and resumes
        each subscription with `after`."""
        reason = "Server going away: reconnect and resume with after"
        await asyncio.gather(
            *(c._close(1001, reason) for c in list(self.connections)),
            *(streams.going_away() for streams in self.streams),
        )


class Connection:
    """One socket, whichever protocol it speaks (`protocol`, its framing)."""

    def __init__(self, endpoint: LiveEndpoint, websocket: WebSocket, send: Send) -> None:
        self.endpoint = endpoint
        self.websocket = websocket
        self._send_frame = send
        self.protocol: type[WireProtocol] = GraphQLTransportWS
        self._next_type = self.protocol.next_type
        self.principal: Principal | None = None
        self.subscribers: dict[str, Subscriber | None] = {}  # None: still starting
        self.starting: dict[str, asyncio.Task[None]] = {}
        self.queue: deque[str] = deque()
        self.wakeup = asyncio.Event()
        self.max_queue = endpoint.settings.live_send_queue
        self.closed = False
        self._main: asyncio.Task[Any] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._ids: dict[str, str] = {}

    # Lifetime

    async def run(self) -> None:
        offered = self.websocket.scope.get("subprotocols") or []
        chosen = next((p for p in PROTOCOLS if p.name in offered), None)
        await self.websocket.accept(subprotocol=chosen.name if chosen else None)
        self._main = asyncio.current_task()
        if chosen is None:
            await self._close(4406, "Subprotocol not acceptable")
            return
        self.protocol = chosen
        self._next_type = chosen.next_type
        self._writer = asyncio.create_task(self._write())
        try:
            await self._serve()
        except Closed as closed:
            await self._close(closed.code, closed.reason)
        except WebSocketDisconnect:
            pass
        except asyncio.CancelledError:
            if not self.closed:  # cancelled by the server, not by our own close
                raise
        finally:
            self._release()

    async def _close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._release()
        with contextlib.suppress(Exception):
            await self.websocket.close(code, reason[:120])
        if self._main is not None and self._main is not asyncio.current_task():
            self._main.cancel()

    def _release(self) -> None:
        """Stop every subscription, the writer and the expiry timer (idempotent)."""
        self.queue.clear()
        for task in self.starting.values():
            task.cancel()
        self.starting.clear()
        for subscriber in self.subscribers.values():
            if subscriber is not None:
                self.endpoint.hub.remove(subscriber)
        self.subscribers.clear()
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
        if self._expiry is not None:
            self._expiry.cancel()

    # Sending (Outbox)

    def send_next(self, subscription_id: str, payload: str, position: Position) -> None:
        quoted = self._ids.get(subscription_id)
        if quoted is None:
            quoted = self._ids[subscription_id] = orjson.dumps(subscription_id).decode()
        self._enqueue(f'{{"id":{quoted},"type":"{self._next_type}","payload":{payload}}}')

    def overflow(self, reason: str) -> None:
        if not self.closed:
            close = self._close(1013, f"Too slow: {reason}; resume with after")
            asyncio.get_running_loop().create_task(close)

    def send(self, message: Mapping[str, Any]) -> None:
        self._enqueue(orjson.dumps(message).decode())

    def _enqueue(self, frame: str) -> None:
        if self.closed:
            return
        if len(self.queue) >= self.max_queue:
            self.queue.clear()
            self.overflow(f"{self.max_queue} messages waiting")
            return
        self.queue.append(frame)
        self.wakeup.set()

    async def _write(self) -> None:
        keep_alive, keep_alive_frame = self.protocol.keep_alive_s, self.protocol.keep_alive_frame
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                if keep_alive is None:
                    await self.wakeup.wait()
                else:
                    try:
                        await asyncio.wait_for(self.wakeup.wait(), keep_alive)
                    except TimeoutError:
                        self.queue.append(keep_alive_frame)
                self.wakeup.clear()
                while self.queue:
                    await self._send_frame({"type": "websocket.send", "text": self.queue.popleft()})

    # Receiving

    async def _serve(self) -> None:
        settings = self.endpoint.settings
        try:
            first = await asyncio.wait_for(self._receive(), settings.live_init_timeout_s)
        except TimeoutError:
            raise Closed(4408, "Connection initialisation timeout") from None
        if first["type"] != "connection_init":
            if first["type"] == self.protocol.subscribe_type:
                raise Closed(4401, "Unauthorized")
            raise Closed(
                4400,
                f"Invalid message received: expected connection_init, got {first['type'][:40]}",
            )
        await self._init(first.get("payload"))
        while True:
            message = await self._receive()
            if message["type"] == "connection_init":
                raise Closed(4429, "Too many initialisation requests")
            self.protocol.handle(self, message["type"], message)

    async def _receive(self) -> dict[str, Any]:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        limit = self.endpoint.settings.max_body_bytes
        if len(raw) > limit:
            raise Closed(1009, f"Message larger than {limit} bytes")
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Closed(4400, "Invalid message received: not JSON") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
            raise Closed(4400, "Invalid message received: no type")
        return parsed

    async def _init(self, payload: Any) -> None:
        authorization = None
        if isinstance(payload, dict):
            authorization = payload.get("authorization") or payload.get("Authorization")
        try:
            if not isinstance(authorization, str):
                raise DomainError("A token is needed in connection_init's payload.")
            self.principal = await self.endpoint.authenticator.authenticate(authorization)
        except DomainError:
            self.protocol.refuse_init(self)
            raise Closed(4401, "Unauthorized") from None
        self.protocol.acknowledge(self)
        remaining = self.principal.expires_at - time.time()
        self._expiry = asyncio.get_running_loop().call_later(max(remaining, 0.0), self._expired)

    def _expired(self) -> None:
        reason = "Token expired: reconnect with a new token and resume with after"
        asyncio.get_running_loop().create_task(self._close(4401, reason))

    # The protocols' Session

    def subscribe(self, message: dict[str, Any]) -> None:
        subscription_id = message.get("id")
        if not isinstance(subscription_id, str) or not 0 < len(subscription_id) <= MAX_ID_LENGTH:
            raise Closed(4400, "Invalid message received: bad id")
        if subscription_id in self.subscribers:
            raise Closed(4409, f"Subscriber for {subscription_id[:64]} already exists")
        payload = message.get("payload")
        if not isinstance(payload, dict):
            raise Closed(4400, "Invalid message received: no payload")
        self.subscribers[subscription_id] = None
        task = asyncio.create_task(self._start(subscription_id, payload))
        self.starting[subscription_id] = task

    def complete(self, subscription_id: Any) -> None:
        if not isinstance(subscription_id, str):
            raise Closed(4400, "Invalid message received: bad id")
        task = self.starting.pop(subscription_id, None)
        if task is not None:
            task.cancel()
        subscriber = self.subscribers.pop(subscription_id, None)
        if subscriber is not None:
            self.endpoint.hub.remove(subscriber)

    # Starting a subscription

    async def _start(self, subscription_id: str, payload: dict[str, Any]) -> None:
        try:
            await self._open(subscription_id, payload)
        except CannotSubscribe as refused:
            subscriber = self.subscribers.pop(subscription_id, None)
            if subscriber is not None:
                self.endpoint.hub.remove(subscriber)
            errors = self.protocol.error_payload(refused.errors)
            self.send({"id": subscription_id, "type": "error", "payload": errors})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not start subscription")
            subscriber = self.subscribers.pop(subscription_id, None)
            if subscriber is not None:
                self.endpoint.hub.remove(subscriber)
            self.send(
                {
                    "id": subscription_id,
                    "type": "error",
                    "payload": [
                        {
                            "message": "Internal server error.",
                            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                        }
                    ],
                }
            )
        finally:
            self.starting.pop(subscription_id, None)

    async def _open(self, subscription_id: str, payload: dict[str, Any]) -> None:
        assert self.principal is not None
        subscriptions = self.endpoint.subscriptions
        request = subscriptions.request(payload)
        subscriber = await subscriptions.start(self.principal, request, self, subscription_id)
        if self.subscribers.get(subscription_id, subscriber) is None:
            self.subscribers[subscription_id] = subscriber
        else:  # completed (or the connection closed) while it started
            self.endpoint.hub.remove(subscriber)
