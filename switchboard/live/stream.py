"""One open HTTP event stream (SSE or multipart): its send queue, heartbeats and ending.

What SSE (sse.py) and multipart (multipart.py) share; each gives its framing (`Framing`):

- The response goes out at once, uncompressed and unbuffered: `Cache-Control: no-cache`,
  `X-Accel-Buffering: no` (nginx), and each event is written, and so flushed, when it is
  sent (the compression middleware passes streams by).
- The hub hands events to `send_next`, which never waits: a bounded queue
  (`live_send_queue`, as on websocket) that a slow reader fills ends its stream.
- Heartbeats keep proxies' idle timeouts from firing while nothing happens.
- A client that goes away is seen at once (ASGI's `http.disconnect`, read beside the
  writer) and everything it held is released: its subscribers leave the hub.
- The gateway ends a stream with a terminal message naming the reason, after which the
  client resumes (SSE: `Last-Event-ID`; multipart: `after`):

| reason | when |
| --- | --- |
| `TOKEN_EXPIRED` | the token's `exp` passed (code UNAUTHENTICATED: reconnect with a new token) |
| `TOO_SLOW` | `live_send_queue` events waited for the client |
| `GOING_AWAY` | the gateway is stopping (SIGTERM): reconnect, to another instance if any |

Closes are counted by reason in `switchboard_live_stream_closes_total` (observability/live.py),
with `client` (it went away) and `complete` (the operation or stream ended normally).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from starlette.types import Receive, Send

from domain.access import Principal
from domain.events import Position
from switchboard.live.hub import Hub, Subscriber
from switchboard.observability import live as observed

TOKEN_EXPIRED, TOO_SLOW, GOING_AWAY = "TOKEN_EXPIRED", "TOO_SLOW", "GOING_AWAY"
CLIENT, COMPLETE = "client", "complete"
GOING_AWAY_WAIT_S = 2.0  # on stop, how long streams may take to write their last message

TERMINAL: dict[str, tuple[str, str]] = {
    TOKEN_EXPIRED: (
        "UNAUTHENTICATED",
        "Token expired: reconnect with a new token and resume from the last event.",
    ),
    TOO_SLOW: (
        "STREAM_CLOSED",
        "Too slow: events waited for this client; resume from the last event.",
    ),
    GOING_AWAY: (
        "STREAM_CLOSED",
        "Server going away: reconnect (to another instance if there is one) and resume from "
        "the last event.",
    ),
}

STREAM_HEADERS = [
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx and others: pass each event on as it comes
]


def terminal_errors(reason: str) -> list[dict[str, Any]]:
    code, message = TERMINAL[reason]
    return [{"message": message, "extensions": {"code": code, "reason": reason}}]


class Framing(Protocol):
    """How one transport writes its stream."""

    transport: str
    media_type: bytes

    def next(self, subscription_id: str, payload: str, position: Position) -> bytes: ...

    def complete(self, subscription_id: str) -> bytes: ...

    def heartbeat(self) -> bytes: ...

    def start(self) -> bytes: ...

    def errors(self, subscription_id: str, errors: list[dict[str, Any]]) -> bytes: ...

    def terminal(self, subscription_ids: list[str], reason: str) -> bytes: ...

    def end(self) -> bytes: ...


class EventStream:
    """A stream's queue and lifetime; the hub's `Outbox` for its subscribers."""

    def __init__(
        self,
        hub: Hub,
        framing: Framing,
        principal: Principal,
        max_queue: int,
        heartbeat_s: float,
        on_close: Callable[[EventStream], None] | None = None,
    ) -> None:
        self.hub = hub
        self.framing = framing
        self.principal = principal
        self.max_queue = max_queue
        self.heartbeat_s = heartbeat_s
        self.on_close = on_close
        self.subscribers: dict[str, Subscriber | None] = {}  # None: still starting
        self.starting: dict[str, asyncio.Task[Any]] = {}
        self.queue: deque[bytes] = deque()
        self.wakeup = asyncio.Event()
        self.reason: str | None = None  # why it ends, once it does
        self.attached = False
        self.done = asyncio.Event()
        self._ids_at_close: list[str] = []
        self._beat_timer: asyncio.TimerHandle | None = None
        remaining = principal.expires_at - time.time()
        self._expiry = asyncio.get_running_loop().call_later(
            max(remaining, 0.0), self.close, TOKEN_EXPIRED
        )

    # The hub's outbox

    def send_next(self, subscription_id: str, payload: str, position: Position) -> None:
        self._enqueue(self.framing.next(subscription_id, payload, position))
        observed.stream_sent(self.framing.transport)

    def overflow(self, reason: str) -> None:
        self.close(TOO_SLOW)

    def _enqueue(self, chunk: bytes) -> None:
        if self.reason is not None:
            return
        if len(self.queue) >= self.max_queue:
            self.close(TOO_SLOW)
            return
        self.queue.append(chunk)
        self.wakeup.set()

    # Subscriptions

    def added(self, subscription_id: str, subscriber: Subscriber) -> bool:
        """Keep a started subscriber, unless it was stopped (or the stream ended) meanwhile."""
        if self.reason is None and self.subscribers.get(subscription_id, subscriber) is None:
            self.subscribers[subscription_id] = subscriber
            return True
        self.hub.remove(subscriber)
        return False

    def complete(self, subscription_id: str, notify: bool = True) -> bool:
        """Stop one subscription; `notify`: tell the client with a `complete`."""
        task = self.starting.pop(subscription_id, None)
        if task is not None:
            task.cancel()
        if subscription_id not in self.subscribers:
            return task is not None
        subscriber = self.subscribers.pop(subscription_id)
        if subscriber is not None:
            self.hub.remove(subscriber)
        if notify:
            self._enqueue(self.framing.complete(subscription_id))
        return True

    # Lifetime

    def close(self, reason: str) -> None:
        """End the stream for `reason` (idempotent); the writer sends the terminal message."""
        if self.reason is not None:
            return
        self.reason = reason
        if reason != COMPLETE:  # what was queued goes again on resume; a completion is sent
            self.queue.clear()
        self._release()
        self.wakeup.set()
        if not self.attached:
            self._finish()

    def _release(self) -> None:
        self._expiry.cancel()
        for task in self.starting.values():
            task.cancel()
        self.starting.clear()
        ids = list(self.subscribers)
        for subscriber in self.subscribers.values():
            if subscriber is not None:
                self.hub.remove(subscriber)
        self.subscribers.clear()
        self._ids_at_close = ids

    def _finish(self) -> None:
        if not self.done.is_set():
            self.done.set()
            observed.stream_closed(self.framing.transport, self.reason or CLIENT)
            if self.on_close is not None:
                self.on_close(self)

    async def serve(self, send: Send, receive: Receive, status: int = 200) -> None:
        """Write the stream until it ends; returns when the response is finished."""
        self.attached = True
        loop = asyncio.get_running_loop()
        observed.stream_opened(self.framing.transport)
        watcher = asyncio.create_task(self._watch(receive))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", self.framing.media_type), *STREAM_HEADERS],
                }
            )
            # Headers and a first heartbeat now: clients (and proxies) see the stream open
            # before the first event.
            start = self.framing.start()
            await send({"type": "http.response.body", "body": start, "more_body": True})
            self._beat_timer = loop.call_later(self.heartbeat_s, self._beat)
            while True:
                await self.wakeup.wait()
                self.wakeup.clear()
                if self.queue:
                    chunks = b"".join(self.queue)
                    self.queue.clear()
                    await send({"type": "http.response.body", "body": chunks, "more_body": True})
                if self.reason is not None:
                    break
            if self.reason != CLIENT:
                ending = b""
                if self.reason in TERMINAL:
                    ending = self.framing.terminal(self._ids_at_close, self.reason)
                await send(
                    {
                        "type": "http.response.body",
                        "body": ending + self.framing.end(),
                        "more_body": False,
                    }
                )
        except OSError:
            self.close(CLIENT)
        finally:
            watcher.cancel()
            if self._beat_timer is not None:
                self._beat_timer.cancel()
            self.close(CLIENT)
            self._finish()
            observed.stream_ended(self.framing.transport)

    def _beat(self) -> None:
        # A timer per stream, not a timeout per event: the heartbeat goes every interval,
        # busy or not, so the longest silence a proxy sees is one interval.
        if self.reason is None:
            self.queue.append(self.framing.heartbeat())
            self.wakeup.set()
            self._beat_timer = asyncio.get_running_loop().call_later(self.heartbeat_s, self._beat)

    async def _watch(self, receive: Receive) -> None:
        """The client going away ends the stream at once (nothing else is read)."""
        with contextlib.suppress(Exception):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    break
        self.close(CLIENT)

    def refuse(self, subscription_id: str, errors: list[dict[str, Any]], last: bool) -> None:
        """A subscription that cannot start: its errors, then its completion; `last`: the
        stream carried only it, and ends."""
        self.starting.pop(subscription_id, None)
        self.subscribers.pop(subscription_id, None)
        self._enqueue(self.framing.errors(subscription_id, errors))
        self._enqueue(self.framing.complete(subscription_id))
        if last:
            self.close(COMPLETE)
