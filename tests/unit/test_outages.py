"""Riding out an outage, without servers: how often a server that went away is probed
(tasks/outage.py), and a gateway's enqueues that Redis refused, enqueued once it answers
(tasks/queue.py, `LateEnqueues`), against a stand-in for Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tasks.broker import now_ms
from tasks.outage import CAP_S, EARLY_CAP_S, EARLY_S, REDIS, Outage
from tasks.queue import LateEnqueues


def test_an_outage_is_probed_often_in_its_first_seconds_and_less_after() -> None:
    outage = Outage(REDIS, _never)
    at, delay, probes = 0.0, outage.base_s, []
    while at < 60:
        at += delay
        probes.append((at, delay))
        delay = outage.next_delay(delay, at)
    early = [d for t, d in probes if t <= EARLY_S]
    # A server back during the first seconds is seen within EARLY_CAP_S, and the probe
    # still backs off from its first delay rather than spinning.
    assert early[0] == outage.base_s and max(early) == EARLY_CAP_S
    assert len(early) <= EARLY_S / EARLY_CAP_S + 3
    late = [d for t, d in probes if t > EARLY_S + 2]
    assert late and all(d == CAP_S for d in late)


async def _never() -> None:
    raise RedisConnectionError("down")


class StandInRedis:
    """Answers the queue's enqueue script (EVALSHA) and PING while `up`; refuses both
    (as a server that is gone does) otherwise."""

    def __init__(self) -> None:
        self.up = False
        self.broken = False  # up, but the script fails (not an outage)
        self.enqueued: dict[str, int] = {}  # job → the place it was given (ms)

    async def ping(self) -> bool:
        if not self.up:
            raise RedisConnectionError("Connection refused")
        return True

    async def evalsha(self, sha: str, keys: int, *args: Any) -> int:
        if not self.up:
            raise RedisConnectionError("Connection refused")
        if self.broken:
            raise ResponseError("OOM command not allowed when used memory > 'maxmemory'")
        job, place = args[1], args[8]
        if job in self.enqueued:
            return 0
        self.enqueued[job] = int(place)
        return 1


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _job(created: dt.datetime) -> dict[str, Any]:
    return {
        "activity_id": uuid.uuid4(),
        "tenant_id": uuid.uuid4(),
        "agent_id": uuid.uuid4(),
        "priority": 5,
        "created": created,
    }


async def test_refused_enqueues_go_through_once_redis_answers_in_their_place() -> None:
    redis = StandInRedis()
    probe = Outage(REDIS, redis.ping, base_s=0.01, early_cap_s=0.02, confirm_s=0.05)
    late = LateEnqueues(redis, outage=probe)  # type: ignore[arg-type]
    created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=3)
    jobs = [_job(created + dt.timedelta(milliseconds=n)) for n in range(3)]
    try:
        for job in jobs:
            late.add(RedisConnectionError("Connection refused"), **job)
        assert late.waiting == 3 and probe.down
        await asyncio.sleep(0.1)  # probes fail meanwhile; nothing is lost or sent
        assert redis.enqueued == {} and late.waiting == 3

        redis.up = True
        await _until(lambda: late.waiting == 0)
        assert late.enqueued == 3
        # Each at its activity's creation, not at the moment Redis came back.
        assert redis.enqueued == {
            job["activity_id"].hex: int(job["created"].timestamp() * 1000) for job in jobs
        }
        assert all(place < now_ms() - 2000 for place in redis.enqueued.values())
    finally:
        await late.close()


async def test_what_waits_past_its_bounds_is_left_to_the_reconciler() -> None:
    redis = StandInRedis()
    probe = Outage(REDIS, redis.ping, base_s=0.01, early_cap_s=0.02)
    late = LateEnqueues(redis, keep_s=0.2, limit=2, outage=probe)  # type: ignore[arg-type]
    refused = RedisConnectionError("Connection refused")
    now = dt.datetime.now(dt.UTC)
    try:
        for _ in range(3):
            late.add(refused, **_job(now))
        assert late.waiting == 2  # the third is the reconciler's at once
        await _until(lambda: late.waiting == 0)  # given up after keep_s
        redis.up = True
        late.add(refused, **_job(now))
        await _until(lambda: late.enqueued == 1)
        assert len(redis.enqueued) == 1
        # Up, but failing for another reason: not tried again and again (the reconciler's).
        redis.broken = True
        late.add(refused, **_job(now))
        await _until(lambda: late.waiting == 0)
        assert late.enqueued == 1
        redis.up, redis.broken = False, False
        late.add(refused, **_job(now))
    finally:
        await late.close()  # a stopping process: what waits is cancelled
    assert late.waiting == 0 and len(redis.enqueued) == 1
