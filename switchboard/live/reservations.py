"""Single connection mode's reservations, shared by every gateway process through Redis,
and the hand-over of an operation to the process that holds its stream.

`serve`'s gateway processes share one port, so a reservation's PUT, its stream's GET and
each operation's POST or DELETE may each reach a different process. Redis holds what they
must agree on:

- `PUT` writes `sb:live:sse:reservation:<tenant hex>:<token>`, a hash with the principal
  (`subject`) and no `owner`, kept `live_init_timeout_s`. The tenant is part of the key:
  another tenant's request looks up a key of its own tenant and finds nothing.
- The `GET` that opens the stream claims it (one Lua step: the record exists, is the
  caller's and has no owner yet), writing this process's id as `owner`; a second stream on
  the same reservation, on any process, is refused. While the stream is open the owner
  renews the claim every heartbeat (`CLAIM_TTL_BEATS` heartbeats long, so a process that
  died lets go by itself); when the stream ends the record is deleted.
- `POST` and `DELETE` on another process are published to the owner's channel
  (`sb:live:sse:process:<id>`) with the caller's principal; the owner runs them exactly as
  its own requests (`Handler`: admission, rate limit, the persisted-document rules, limits,
  `Last-Event-ID`, all at the owner) and publishes the outcome to the caller's channel,
  which answers it over HTTP. On the owning process the same handler runs directly. No
  listener on the owner's channel: the stream is gone (404); no answer within
  `live_forward_timeout_s`: 503 SERVICE_UNAVAILABLE.

Redis down: every Redis use here goes through the edge's shared breaker; while it is open
or a call fails, the request answers 503 SERVICE_UNAVAILABLE with `Retry-After`. Open
streams stay open; their claims are written again when Redis answers (a record lost
meanwhile is restored), and the channel's listener reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from domain.access import Principal
from switchboard.edge.admission import RequestError
from switchboard.infra.breaker import RedisBreaker
from switchboard.live.stream import EventStream
from switchboard.observability import live as observed

log = logging.getLogger(__name__)

KEY = "sb:live:sse:reservation:{tenant}:{token}"
CHANNEL = "sb:live:sse:process:{process}"
CLAIM_TTL_BEATS = 3  # a claim outlives two missed renewals
RETRY_AFTER_S = 1
NOT_FOUND = "No stream is reserved with this token."
ENDED = "The stream of this reservation has ended."
NOT_OPEN = "The stream of this reservation is not open: open it with GET first."
UNAVAILABLE = "Reservations cannot be reached now; nothing was changed. Retry shortly."
NO_ANSWER = "The process holding this stream did not answer in time. Retry shortly."

# KEYS[1] the record; ARGV: subject, this process, claim ttl (ms).
# 0: unknown (or another user's), 1: claimed, 2: already claimed.
CLAIM = """
local r = redis.call('HMGET', KEYS[1], 'subject', 'owner')
if not r[1] or r[1] ~= ARGV[1] then return 0 end
if r[2] and r[2] ~= '' then return 2 end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# Renew this process's claim, restoring a record that Redis lost; 0 if another owns it.
KEEP = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'subject', ARGV[1], 'owner', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome:
    """An operation's HTTP answer: `payload` as JSON, or an empty text body if None."""

    status: int
    payload: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


# Runs an operation's message on the stream it names (on the owning process).
Handler = Callable[[EventStream, Principal, dict[str, Any]], Awaitable[Outcome]]


def unavailable(message: str = UNAVAILABLE) -> RequestError:
    return RequestError(503, "SERVICE_UNAVAILABLE", message, {"retry-after": str(RETRY_AFTER_S)})


def principal_to_json(principal: Principal) -> dict[str, Any]:
    values = asdict(principal)
    values["subject_id"] = principal.subject_id.hex
    values["tenant_id"] = principal.tenant_id.hex
    return values


def principal_from_json(values: dict[str, Any]) -> Principal:
    return Principal(
        **{
            **values,
            "subject_id": uuid.UUID(values["subject_id"]),
            "tenant_id": uuid.UUID(values["tenant_id"]),
        }
    )


class SharedReservations:
    """This process's side of the shared reservations: the streams it holds, its channel."""

    def __init__(
        self,
        redis: Redis,
        subscriber: Redis,
        breaker: RedisBreaker,
        handler: Handler,
        *,
        init_timeout_s: float,
        heartbeat_s: float,
        forward_timeout_s: float,
    ) -> None:
        self.redis = redis
        self.breaker = breaker
        self.handler = handler
        self.process = uuid.uuid4().hex
        self.channel = CHANNEL.format(process=self.process)
        self.init_ttl_ms = max(int(init_timeout_s * 1000), 1)
        self.heartbeat_s = heartbeat_s
        self.claim_ttl_ms = max(int(CLAIM_TTL_BEATS * heartbeat_s * 1000), 1000)
        self.forward_timeout_s = forward_timeout_s
        self.owned: dict[str, tuple[EventStream, str]] = {}  # key: (stream, subject hex)
        self._claim = redis.register_script(CLAIM)
        self._release = redis.register_script(RELEASE)
        # Its own client: a subscribed connection blocks, unlike the request path's.
        self._subscriber = subscriber
        self._listening = asyncio.Event()
        self._waiting: dict[str, asyncio.Future[Outcome]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None

    # The requests' side

    async def reserve(self, principal: Principal) -> str:
        token = secrets.token_urlsafe(24)
        key = _key(principal, token)

        async def write() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"subject": principal.subject_id.hex, "owner": ""})
                pipe.pexpire(key, self.init_ttl_ms)
                await pipe.execute()

        await self._call("sse reserve", write)
        return token

    async def claim(
        self, principal: Principal, token: str, make_stream: Callable[[], EventStream]
    ) -> EventStream:
        """The reservation's stream, made here and held by this process from now on."""
        await self._listen()  # operations sent from other processes must reach it
        key = _key(principal, token)
        subject = principal.subject_id.hex
        claimed = await self._call(
            "sse claim",
            lambda: self._claim(keys=[key], args=[subject, self.process, self.claim_ttl_ms]),
        )
        if claimed == 0:
            raise RequestError(404, "NOT_FOUND", NOT_FOUND)
        if claimed == 2:
            raise RequestError(409, "CONFLICT", "This reservation already has its stream.")
        stream = make_stream()  # no await since the claim: no message finds it missing
        self.owned[key] = (stream, subject)
        stream.on_close = lambda _: self._released(key)
        self._start_keeper()
        return stream

    async def act(self, principal: Principal, token: str, message: dict[str, Any]) -> Outcome:
        """Run an operation's message on the reservation's stream, wherever it is held."""
        key = _key(principal, token)
        held = self.owned.get(key)
        if held is not None and held[1] == principal.subject_id.hex:
            return await self.handler(held[0], principal, message)  # the short-cut
        subject, owner = await self._call(
            "sse lookup", lambda: self.redis.hmget(key, "subject", "owner")
        )
        if subject is None or subject.decode() != principal.subject_id.hex:
            raise RequestError(404, "NOT_FOUND", NOT_FOUND)
        if not owner:
            raise RequestError(404, "NOT_FOUND", NOT_OPEN)
        if owner.decode() == self.process:  # held here a moment ago: its stream has ended
            raise RequestError(404, "NOT_FOUND", ENDED)
        return await self._forward(owner.decode(), key, principal, message)

    async def _forward(
        self, owner: str, key: str, principal: Principal, message: dict[str, Any]
    ) -> Outcome:
        request_id = uuid.uuid4().hex
        answer: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        body = orjson.dumps(
            {
                "kind": "request",
                "id": request_id,
                "from": self.process,
                "key": key,
                "principal": principal_to_json(principal),
                "message": message,
                "deadline": time.time() + self.forward_timeout_s,
            }
        )
        try:
            try:
                await self._listen()  # the answer comes on this process's channel
                receivers = await self._call(
                    "sse forward",
                    lambda: self.redis.publish(CHANNEL.format(process=owner), body),
                )
            except RequestError:
                observed.forwarded("unavailable")
                raise
            if receivers == 0:  # nobody listens there: its process and stream are gone
                observed.forwarded("gone")
                raise RequestError(404, "NOT_FOUND", ENDED)
            try:
                outcome = await asyncio.wait_for(answer, self.forward_timeout_s)
            except TimeoutError:
                observed.forwarded("timeout")
                raise unavailable(NO_ANSWER) from None
        finally:
            self._waiting.pop(request_id, None)
        observed.forwarded("answered")
        return outcome

    # The owner's side

    async def _answer(self, request: dict[str, Any]) -> None:
        held = self.owned.get(request["key"])
        principal = principal_from_json(request["principal"])
        if held is None or held[1] != principal.subject_id.hex:
            outcome = Outcome(404, _errors("NOT_FOUND", ENDED))
        elif time.time() > request["deadline"]:  # the caller has answered 503 already
            return
        else:
            outcome = await self.handler(held[0], principal, request["message"])
        reply = {"kind": "reply", "id": request["id"], "outcome": asdict(outcome)}
        try:
            await self.redis.publish(CHANNEL.format(process=request["from"]), orjson.dumps(reply))
        except (RedisError, OSError) as error:
            self.breaker.failed("sse reply", error)

    def _released(self, key: str) -> None:
        self.owned.pop(key, None)
        self._spawn(self._delete(key))

    async def _delete(self, key: str) -> None:
        try:
            await self._release(keys=[key], args=[self.process])
        except (RedisError, OSError) as error:  # the claim's TTL ends it instead
            self.breaker.failed("sse release", error)

    # The channel

    async def _listen(self) -> None:
        """Start this process's listener if needed; wait (bounded) until it is subscribed."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._read(), name="sse-reservations")
        if self._listening.is_set():
            return
        if not self.breaker.available():
            raise unavailable()
        try:
            await asyncio.wait_for(self._listening.wait(), self.forward_timeout_s)
        except TimeoutError:
            raise unavailable() from None

    async def _read(self) -> None:
        failures = 0
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        failures = 0
                        self._listening.set()
                    elif message["type"] == "message":
                        self._received(orjson.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis away: subscribe again once it answers
                self._listening.clear()
                failures += 1
                if failures == 1:  # once per outage
                    log.warning("SSE reservations cannot listen on Redis (%s); retrying", error)
                await asyncio.sleep(min(0.05 * 2**failures, 2.0))  # back-off, not a sync
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _received(self, data: dict[str, Any]) -> None:
        if data.get("kind") == "reply":
            waiting = self._waiting.get(data["id"])
            if waiting is not None and not waiting.done():
                outcome = data["outcome"]
                waiting.set_result(
                    Outcome(outcome["status"], outcome["payload"], outcome["headers"])
                )
        elif data.get("kind") == "request":
            self._spawn(self._answer(data))

    # Keeping claims

    def _start_keeper(self) -> None:
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep_claims(), name="sse-claims")

    async def _keep_claims(self) -> None:
        # One pipeline per heartbeat for every stream held here, not a task per stream.
        failing = False
        while True:
            await asyncio.sleep(self.heartbeat_s)  # the renewal period, not a sync
            if not self.owned:
                continue
            held = list(self.owned.items())
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key, (_, subject) in held:
                        pipe.eval(KEEP, 1, key, subject, self.process, self.claim_ttl_ms)
                    kept = await pipe.execute()
            except (RedisError, OSError) as error:
                if not failing:
                    log.warning("SSE reservations cannot renew claims (%s); retrying", error)
                failing = True
                self.breaker.failed("sse claims", error)
                continue
            failing = False
            for (_, (stream, _)), ok in zip(held, kept, strict=True):
                if not ok:  # another stream took it while Redis had lost it
                    log.warning("an SSE reservation was claimed elsewhere; ending its stream")
                    stream.close("GOING_AWAY")

    # Lifetime

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Let the releases of ended streams finish, then stop listening."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        for task in (self._listener, self._keeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._subscriber.aclose()

    async def _call(self, where: str, call: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.available():
            raise unavailable()
        try:
            result = await call()
        except (RedisError, OSError, TimeoutError) as error:
            self.breaker.failed(where, error)
            raise unavailable() from None
        self.breaker.succeeded()
        return result


def _key(principal: Principal, token: str) -> str:
    return KEY.format(tenant=principal.tenant_id.hex, token=token)


def _errors(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}
