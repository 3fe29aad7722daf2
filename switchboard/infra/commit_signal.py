"""Waking the outbox relays through Redis where PostgreSQL cannot: behind a transaction
pooler no connection may LISTEN, so each process's `Database.after_commit` publishes on
`WAKE_CHANNEL` after a commit, and every relay (switchboard/live/relay.py) subscribes."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

WAKE_CHANNEL = "sb:live:outbox"  # Redis pub/sub: a transaction committed


class CommitSignal:
    """`Database.after_commit` behind a transaction pooler: PUBLISH on `WAKE_CHANNEL`, in
    the background (a commit never waits on Redis), coalesced (commits while a publish is
    under way make one more publish after it, never one each)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def __call__(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._publish())

    async def _publish(self) -> None:
        while True:
            self._again = False
            with contextlib.suppress(Exception):  # the relays' poll covers a lost signal
                await self.redis.publish(WAKE_CHANNEL, b"")
            if not self._again:
                return
