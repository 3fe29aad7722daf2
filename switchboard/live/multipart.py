"""Apollo's multipart HTTP subscriptions on /graphql.

A `POST /graphql` whose `Accept` names `multipart/mixed` with `subscriptionSpec` (Apollo
Client's HttpLink sends `multipart/mixed;boundary=graphql;subscriptionSpec=1.0`) runs one
subscription as one response, `multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"`:

- each event is a part `{"payload": {"data": …}}`, written with the boundary after it so
  that a client hands it on at once (it reads a part when the next boundary arrives);
- a heartbeat `{}` every 5 seconds, as Apollo's protocol defines it;
- a stream the gateway ends (stream.py's reasons) ends with the protocol's transport error,
  `{"payload": null, "errors": [{…, "extensions": {"code", "reason"}}]}`, then the closing
  boundary.

Everything before the stream answers as GraphQL over HTTP does, with the contract's codes
and statuses (401, 429, 400 for a document that does not parse or validate, a mobile token
sending text, a bad argument, an `after` older than 24 hours). Multipart has no event id:
each event's `id` field is its position, and the operation's `after` resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from domain.errors import DomainError
from domain.events import Position
from switchboard.edge.admission import RequestError, errors_payload
from switchboard.edge.http import _read_request
from switchboard.live.stream import GOING_AWAY_WAIT_S, EventStream, terminal_errors
from switchboard.live.subscribe import CannotSubscribe, LiveSubscriptions, Ready

HEARTBEAT_S = 5.0  # Apollo's multipart subscription protocol
MEDIA_TYPE = b'multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"'
BOUNDARY = b"\r\n--graphql"
PART = b"\r\ncontent-type: application/json; charset=utf-8\r\n\r\n"
ONLY = "1"  # the one subscription of a multipart response


def wants_multipart(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return request.method == "POST" and "multipart/mixed" in accept and "subscriptionspec" in accept


class MultipartFraming:
    transport = "multipart"
    media_type = MEDIA_TYPE

    def _part(self, body: bytes) -> bytes:
        return PART + body + BOUNDARY

    def next(self, subscription_id: str, payload: str, position: Position) -> bytes:
        return self._part(b'{"payload":' + payload.encode() + b"}")

    def errors(self, subscription_id: str, errors: list[dict[str, Any]]) -> bytes:
        return self._part(orjson.dumps({"payload": {"errors": errors}}))

    def complete(self, subscription_id: str) -> bytes:
        return b""  # the closing boundary (`end`) completes the one subscription

    def heartbeat(self) -> bytes:
        return self._part(b"{}")

    def start(self) -> bytes:
        return BOUNDARY + self.heartbeat()

    def terminal(self, subscription_ids: list[str], reason: str) -> bytes:
        return self._part(orjson.dumps({"payload": None, "errors": terminal_errors(reason)}))

    def end(self) -> bytes:
        return b"--\r\n"


class MultipartEndpoint:
    def __init__(self, subscriptions: LiveSubscriptions) -> None:
        self.subscriptions = subscriptions
        self.admission = subscriptions.admission
        self.settings = subscriptions.settings
        self.streams: set[EventStream] = set()

    async def going_away(self) -> None:
        for stream in list(self.streams):
            stream.close("GOING_AWAY")
        # A client that reads nothing cannot hold the stop: the supervisor's timeout wins.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.done.wait() for s in list(self.streams))), GOING_AWAY_WAIT_S
            )

    async def __call__(self, request: Request) -> Response:
        """Answer a multipart subscription request: its stream, or a GraphQL-over-HTTP
        error before any stream opens."""
        try:
            graphql_request = await _read_request(request, self.settings)
            principal = await self.admission.authenticate(
                request.headers.get("authorization"),
                request.client.host if request.client else None,
            )
            await self.admission.rate_limit(principal)
            ready = await self.subscriptions.prepare(principal, graphql_request, None, "multipart")
        except DomainError as error:
            status = 401 if error.code == "UNAUTHENTICATED" else 400
            return _json(status, errors_payload(error.code, error.message))
        except RequestError as error:
            return _json(error.status, errors_payload(error.code, error.message), error.headers)
        except CannotSubscribe as refused:
            return _json(refused.status, {"errors": refused.errors}, refused.headers)
        stream = EventStream(
            self.subscriptions.hub,
            MultipartFraming(),
            principal,
            self.settings.live_send_queue,
            HEARTBEAT_S,
        )
        return _StreamResponse(self, stream, ready)


class _StreamResponse(Response):
    """Serves the stream when Starlette sends the response."""

    def __init__(self, endpoint: MultipartEndpoint, stream: EventStream, ready: Ready) -> None:
        super().__init__()
        self.endpoint, self.stream, self.ready = endpoint, stream, ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = self.stream
        stream.subscribers[ONLY] = None
        stream.starting[ONLY] = asyncio.create_task(self._join())
        self.endpoint.streams.add(stream)
        try:
            await stream.serve(send, receive)
        finally:
            self.endpoint.streams.discard(stream)

    async def _join(self) -> None:
        stream = self.stream
        try:
            subscriber = await self.endpoint.subscriptions.join(self.ready, stream, ONLY)
        except CannotSubscribe as refused:
            stream.refuse(ONLY, refused.errors, last=True)
            return
        finally:
            stream.starting.pop(ONLY, None)
        stream.added(ONLY, subscriber)


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers, media_type="application/json")
