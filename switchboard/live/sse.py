"""GraphQL over Server-Sent Events at /graphql/stream: the graphql-sse protocol, both modes.

Every request carries `Authorization: Bearer <JWT>`; a missing or bad one answers 401
before any stream opens (and a rate-limited one 429).

- Distinct connections mode: `POST` (JSON body) or `GET` (query string) with the
  operation opens one stream for it: `next` events, then `complete` when the operation
  ends. A document that cannot run (it does not parse or validate, a mobile token sent
  text, a bad argument, a malformed or unknown `Last-Event-ID`) still gets a 200 stream, as
  the protocol wants: one `next` with the errors, then `complete`.
- Single connection mode: `PUT` reserves a stream (201, the reservation token as the body);
  `GET` with the token (`X-GraphQL-Event-Stream-Token` or `?token=`) opens it (404 for an
  unknown token, another tenant's or user's included; 409 for a second stream on one
  reservation); `POST` with the token and `extensions.operationId` starts an operation on
  it once the stream is open (202; a refusal is the operation's own HTTP answer with the
  contract's codes; before the stream opens, 404); `DELETE ?operationId=` stops one (200).
  A reservation nobody opens within `live_init_timeout_s` is dropped; the stream ending
  drops it with its operations.
  Reservations are shared by every gateway process through Redis, and an operation that
  reaches another process than the stream's is run by the stream's (reservations.py).

Every `next` carries `id: <the event's position>`. Resuming: distinct mode, the reconnect
sends `Last-Event-ID`; single connection mode, the operation's `POST` carries it (each
operation's events are positions in its own log). Replay, seam and the 24-hour limit are
`after`'s (hub.py). How streams end, heartbeats and close reasons: stream.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from domain.access import Principal
from domain.errors import DomainError
from domain.events import Position, parse_position
from switchboard.edge.admission import RequestError, errors_payload, json_param, read_body
from switchboard.edge.http import MASKED, UNAVAILABLE_MESSAGE
from switchboard.infra.db import unavailable as db_unavailable
from switchboard.live import reservations
from switchboard.live.reservations import ENDED, Outcome, SharedReservations
from switchboard.live.stream import GOING_AWAY_WAIT_S, EventStream, terminal_errors
from switchboard.live.subscribe import CannotSubscribe, LiveSubscriptions, refusal

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-graphql-event-stream-token"
MAX_OPERATION_ID = 128
DISTINCT_ID = ""  # the one subscription of a distinct-mode stream


class SSEFraming:
    transport = "sse"
    media_type = b"text/event-stream; charset=utf-8"

    def __init__(self, single: bool) -> None:
        self.single = single
        self._quoted: dict[str, str] = {}

    def _data(self, subscription_id: str, payload: str) -> str:
        if not self.single:
            return payload
        quoted = self._quoted.get(subscription_id)
        if quoted is None:
            quoted = self._quoted[subscription_id] = orjson.dumps(subscription_id).decode()
        return f'{{"id":{quoted},"payload":{payload}}}'

    def next(self, subscription_id: str, payload: str, position: Position) -> bytes:
        data = self._data(subscription_id, payload)
        return f"id: {position[0]}-{position[1]}\nevent: next\ndata: {data}\n\n".encode()

    def errors(self, subscription_id: str, errors: list[dict[str, Any]]) -> bytes:
        data = self._data(subscription_id, orjson.dumps({"errors": errors}).decode())
        return f"event: next\ndata: {data}\n\n".encode()

    def complete(self, subscription_id: str) -> bytes:
        if not self.single:
            return b"event: complete\ndata: \n\n"  # an empty data line, for EventSource
        self._quoted.pop(subscription_id, None)
        return (
            f"event: complete\ndata: {orjson.dumps({'id': subscription_id}).decode()}\n\n".encode()
        )

    def heartbeat(self) -> bytes:
        return b":\n\n"

    def start(self) -> bytes:
        return b":\n\n"

    def terminal(self, subscription_ids: list[str], reason: str) -> bytes:
        # A `next` with the reason and no `complete`: graphql-sse clients take the stream's
        # end as a network failure and reconnect; EventSource reconnects with Last-Event-ID.
        errors = terminal_errors(reason)
        if not self.single:
            return self.errors(DISTINCT_ID, errors)
        return b"".join(self.errors(sid, errors) for sid in subscription_ids)

    def end(self) -> bytes:
        return b""


class SSEEndpoint:
    """The /graphql/stream route (an ASGI app: events go straight to the server's send)."""

    def __init__(self, subscriptions: LiveSubscriptions, subscriber: Redis) -> None:
        self.subscriptions = subscriptions
        self.admission = subscriptions.admission
        self.settings = subscriptions.settings
        self.hub = subscriptions.hub
        self.reservations = SharedReservations(
            subscriptions.services.redis,
            subscriber,
            self.admission.breaker,
            self._act,
            init_timeout_s=self.settings.live_init_timeout_s,
            heartbeat_s=self.settings.live_heartbeat_s,
            forward_timeout_s=self.settings.live_forward_timeout_s,
        )
        self.streams: set[EventStream] = set()

    async def going_away(self) -> None:
        """The server is stopping: end every stream with GOING_AWAY (clients resume)."""
        for stream in list(self.streams):
            stream.close("GOING_AWAY")
        for stream, _ in list(self.reservations.owned.values()):
            stream.close("GOING_AWAY")
        # A client that reads nothing cannot hold the stop: the supervisor's timeout wins.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.done.wait() for s in list(self.streams))), GOING_AWAY_WAIT_S
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            principal = await self.admission.authenticate(
                request.headers.get("authorization"),
                request.client.host if request.client else None,
            )
            await self._route(request, principal, send, receive)
        except DomainError as error:
            status = 401 if error.code == "UNAUTHENTICATED" else 400
            await _answer(send, status, errors_payload(error.code, error.message))
        except RequestError as error:
            payload = errors_payload(error.code, error.message)
            await _answer(send, error.status, payload, error.headers)
        except CannotSubscribe as refused:
            await _answer(send, refused.status, {"errors": refused.errors}, refused.headers)

    async def _route(
        self, request: Request, principal: Principal, send: Send, receive: Receive
    ) -> None:
        method = request.method
        token = request.headers.get(TOKEN_HEADER) or request.query_params.get("token")
        if method == "PUT":
            await self.admission.rate_limit(principal)
            await _answer_text(send, 201, await self.reservations.reserve(principal))
        elif token is not None:
            if method == "GET":
                stream = await self.reservations.claim(
                    principal, token, lambda: self._stream(principal, True)
                )
                await self._serve(stream, send, receive)
            elif method in ("POST", "DELETE"):
                if method == "POST":
                    message = {
                        "op": "start",
                        "payload": await _payload(request, self.settings.max_body_bytes),
                        "last_event_id": request.headers.get("last-event-id"),
                    }
                else:
                    message = {"op": "stop", "id": request.query_params.get("operationId", "")}
                await _write(send, await self.reservations.act(principal, token, message))
            else:
                raise RequestError(405, "METHOD_NOT_ALLOWED", "Use GET, POST, PUT or DELETE.")
        elif method in ("GET", "POST"):
            await self._distinct(request, principal, send, receive)
        else:
            raise RequestError(405, "METHOD_NOT_ALLOWED", "Use GET, POST or PUT.")

    # Distinct connections mode

    async def _distinct(
        self, request: Request, principal: Principal, send: Send, receive: Receive
    ) -> None:
        payload = await _payload(request, self.settings.max_body_bytes)
        await self.admission.rate_limit(principal)  # 429 before the stream, like 401
        stream = self._stream(principal, single=False)
        try:
            resume = _last_event_id(request.headers.get("last-event-id"))
            ready = await self.subscriptions.prepare(
                principal, self.subscriptions.request(payload), resume, "sse"
            )
        except CannotSubscribe as refused:
            stream.refuse(DISTINCT_ID, refused.errors, last=True)
        else:
            stream.subscribers[DISTINCT_ID] = None
            stream.starting[DISTINCT_ID] = asyncio.create_task(self._join(stream, ready, True))
        await self._serve(stream, send, receive)

    async def _join(self, stream: EventStream, ready: Any, last: bool, sid: str = "") -> None:
        try:
            subscriber = await self.subscriptions.join(ready, stream, sid)
        except CannotSubscribe as refused:
            stream.refuse(sid, refused.errors, last)
            return
        finally:
            stream.starting.pop(sid, None)
        stream.added(sid, subscriber)

    # Single connection mode

    async def _act(
        self, stream: EventStream, principal: Principal, message: dict[str, Any]
    ) -> Outcome:
        """An operation's POST or DELETE, run by the process that holds its stream (whichever
        process it reached): its HTTP answer."""
        try:
            if message["op"] == "stop":
                stream.complete(str(message["id"]))
                return Outcome(200)
            await self._operation(principal, stream, message["payload"], message["last_event_id"])
            return Outcome(202)
        except DomainError as error:
            status = 401 if error.code == "UNAUTHENTICATED" else 400
            return Outcome(status, errors_payload(error.code, error.message))
        except RequestError as error:
            return Outcome(error.status, errors_payload(error.code, error.message), error.headers)
        except CannotSubscribe as refused:
            return Outcome(refused.status, {"errors": refused.errors}, refused.headers)
        except Exception as error:  # as its own answer, also when it came from another process
            if db_unavailable(error):
                refused = reservations.unavailable(UNAVAILABLE_MESSAGE)
                return Outcome(503, errors_payload(refused.code, refused.message), refused.headers)
            log.exception("an SSE operation failed")
            return Outcome(500, errors_payload("INTERNAL_SERVER_ERROR", MASKED))

    async def _operation(
        self,
        principal: Principal,
        stream: EventStream,
        payload: dict[str, Any],
        last_event_id: str | None,
    ) -> None:
        extensions = payload.get("extensions")
        operation_id = extensions.get("operationId") if isinstance(extensions, dict) else None
        if not isinstance(operation_id, str) or not 0 < len(operation_id) <= MAX_OPERATION_ID:
            raise refusal("BAD_REQUEST", "`extensions.operationId` must name the operation.")
        if operation_id in stream.subscribers:
            raise refusal("BAD_REQUEST", "An operation with this id is running.", 409)
        await self.admission.rate_limit(principal)
        ready = await self.subscriptions.prepare(
            principal, self.subscriptions.request(payload), _last_event_id(last_event_id), "sse"
        )
        if stream.reason is not None:
            raise RequestError(404, "NOT_FOUND", ENDED)
        stream.subscribers[operation_id] = None
        task = asyncio.create_task(self._join(stream, ready, False, operation_id))
        stream.starting[operation_id] = task

    # Both

    def _stream(self, principal: Principal, single: bool) -> EventStream:
        return EventStream(
            self.hub,
            SSEFraming(single),
            principal,
            self.settings.live_send_queue,
            self.settings.live_heartbeat_s,
        )

    async def _serve(self, stream: EventStream, send: Send, receive: Receive) -> None:
        self.streams.add(stream)
        try:
            await stream.serve(send, receive)
        finally:
            self.streams.discard(stream)


def _last_event_id(raw: str | None) -> Position | None:
    if raw is None or raw == "":
        return None
    try:
        return parse_position(raw.strip())
    except ValueError:
        raise refusal(
            "BAD_USER_INPUT", "`Last-Event-ID` must be an event `id` of this stream (`<ms>-<seq>`)."
        ) from None


async def _payload(request: Request, limit: int) -> dict[str, Any]:
    """The operation's parameters: the JSON body (POST) or the query string (GET)."""
    if request.method == "GET":
        params = request.query_params
        return {
            "query": params.get("query"),
            "operationName": params.get("operationName"),
            "variables": json_param(params.get("variables"), "variables"),
            "extensions": json_param(params.get("extensions"), "extensions"),
        }
    try:
        payload = orjson.loads(await read_body(request, limit))
    except orjson.JSONDecodeError:
        raise RequestError(400, "BAD_REQUEST", "The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise RequestError(400, "BAD_REQUEST", "The request body must be a JSON object.")
    return payload


async def _answer(
    send: Send, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    raw = [(b"content-type", b"application/json")]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": orjson.dumps(payload)})


async def _write(send: Send, outcome: Outcome) -> None:
    if outcome.payload is None:
        await _answer_text(send, outcome.status, "")
    else:
        await _answer(send, outcome.status, outcome.payload, outcome.headers)


async def _answer_text(send: Send, status: int, text: str) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text.encode()})
