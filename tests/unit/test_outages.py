"""Riding out an outage, without servers: how often a server that went away is probed
(tasks/outage.py)."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError

from tasks.outage import CAP_S, EARLY_CAP_S, EARLY_S, REDIS, Outage


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
