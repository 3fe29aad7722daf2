"""Level-synchronous batching: one request's DataLoaders dispatch together.

aiodataloader dispatches a loader one loop iteration after its first `load`. When two
branches of a response reach the same loader (the agent of an urgent approval and the
agent of a recent activity, say), whether they share a batch then depends on which
branch's previous query answered first: the statement count of an operation would vary
from one run to the next.

Here every loader of a request hands its queue to the request's `BatchScheduler`, which
dispatches only when none of the request's batches is in flight and no new load has
arrived for a few loop iterations (graphql-core reaches the next level's loads through a
few hops of tasks and futures). Each level of the response is then one batch per loader,
whatever the timing, and the count depends only on the operation's shape.

A `ScheduledLoader` keeps each key's value (not a future per key, as aiodataloader does):
the planned executor asks for a level's keys with one `load_many` and one future, and a
loaded or primed value costs no future at all. `load` (graphql-core's path, and the
resolvers that await one object) makes a key's future only when asked, and keeps it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiodataloader import DataLoader

# Loop iterations without a new load before a level is considered complete. graphql-core
# needs at most 3 hops from a resolved future to the next level's `load` calls.
QUIET_HOPS = 4

_PENDING = object()  # a key queued or in flight
_MISSING = object()


class BatchScheduler:
    """Dispatches the queued loaders of one request, a level at a time."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queued: list[ScheduledLoader] = []
        self._in_flight = 0
        self._loads = 0  # every load so far; a change means loads are still arriving
        self._waiting = False
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def queued(self, loader: ScheduledLoader) -> None:
        self._queued.append(loader)
        self.loaded()

    def loaded(self) -> None:
        self._loads += 1
        if not self._waiting:
            self._waiting = True
            self._loop.call_soon(self._hop, self._loads, 0)

    def _hop(self, loads_seen: int, quiet: int) -> None:
        if self._in_flight:
            self._waiting = False  # the last batch to finish calls `loaded` again
            return
        if self._loads != loads_seen:
            self._loop.call_soon(self._hop, self._loads, 0)
            return
        if quiet < QUIET_HOPS:
            self._loop.call_soon(self._hop, loads_seen, quiet + 1)
            return
        self._waiting = False
        loaders, self._queued = self._queued, []
        for loader in loaders:
            keys, loader._keys = loader._keys, []
            self._in_flight += 1
            task = asyncio.ensure_future(self._run(loader, keys))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, loader: ScheduledLoader, keys: list[Any]) -> None:
        try:
            await loader.dispatch(keys)
        finally:
            self._in_flight -= 1
            if not self._in_flight and self._queued:
                self.loaded()


class ScheduledLoader(DataLoader[Any, Any]):
    """A DataLoader whose dispatch the request's scheduler decides, caching values.

    Its keys are their own cache keys and every load is cached, as the loaders of
    `loaders/` declare them. A batch's value for a key may be an exception: that key
    fails, the others do not. A batch that raises fails all its keys, and (as in
    aiodataloader) is not cached: a later load asks again."""

    def __init__(
        self,
        batch_load_fn: Callable[[Sequence[Any]], Awaitable[list[Any]]],
        scheduler: BatchScheduler,
    ) -> None:
        super().__init__(batch_load_fn)  # type: ignore[arg-type]
        self._scheduler = scheduler
        self._create_future = self.loop.create_future
        self._values: dict[Any, Any] = {}  # each key's value, or _PENDING
        self._futures: dict[Any, asyncio.Future[Any]] = {}  # `load`'s, made when asked
        self._keys: list[Any] = []  # queued for the next dispatch
        # load_many's groups still waiting: (their keys, the list's future).
        self._groups: list[tuple[list[Any], asyncio.Future[list[Any]]]] = []

    def load(self, key: Any) -> asyncio.Future[Any]:
        future = self._futures.get(key)
        if future is not None:
            return future
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            self._queue_key(key)
        future = self._futures[key] = self._create_future()
        if value is not _MISSING and value is not _PENDING:
            _answer(future, value)
        return future

    def load_many(self, keys: list[Any]) -> asyncio.Future[list[Any]]:
        """The values of `keys` (a failed key's exception in its place), in one future:
        the planned executor loads a level's keys with one call and one await instead of
        a future per object."""
        values = self._values
        waiting = False
        for key in keys:
            value = values.get(key, _MISSING)
            if value is _MISSING:
                self._queue_key(key)
                waiting = True
            elif value is _PENDING:
                waiting = True
        group: asyncio.Future[list[Any]] = self._create_future()
        if waiting:
            self._groups.append((keys, group))
        else:  # every key loaded or primed already: the values are at hand
            group.set_result([values[key] for key in keys])
        return group

    def prime(self, key: Any, value: Any) -> ScheduledLoader:
        """`value` for `key`, unless the key is loaded or asked for already."""
        if key not in self._values:
            self._values[key] = value
        return self

    def clear(self, key: Any) -> ScheduledLoader:
        if self._values.get(key) is not _PENDING:
            self._values.pop(key, None)
            self._futures.pop(key, None)
        return self

    def clear_all(self) -> ScheduledLoader:
        self._values.clear()
        self._futures.clear()
        self._groups.clear()
        return self

    def _queue_key(self, key: Any) -> None:
        if key is None:
            raise TypeError(
                "The loader.load() function must be called with a value, but got: None."
            )
        self._values[key] = _PENDING
        self._keys.append(key)
        if len(self._keys) == 1:
            self._scheduler.queued(self)
        else:
            self._scheduler.loaded()

    async def dispatch(self, keys: list[Any]) -> None:
        """Run the batch function for `keys` and answer everyone waiting on them."""
        values = self._values
        failed = False
        try:
            loaded = list(await self.batch_load_fn(keys))
            if len(loaded) != len(keys):
                raise TypeError(
                    f"a batch function answered {len(loaded)} values for {len(keys)} keys"
                )
        except Exception as error:
            failed = True
            loaded = [error] * len(keys)
        for key, value in zip(keys, loaded, strict=True):
            values[key] = value
            future = self._futures.get(key)
            if future is not None and not future.done():
                _answer(future, value)
        if self._groups:
            waiting = []
            for group_keys, group in self._groups:
                if any(values.get(key) is _PENDING for key in group_keys):
                    waiting.append((group_keys, group))
                elif not group.done():
                    group.set_result([values[key] for key in group_keys])
            self._groups = waiting
        if failed:  # not cached: a later load asks again
            for key in keys:
                values.pop(key, None)
                self._futures.pop(key, None)


def _answer(future: asyncio.Future[Any], value: Any) -> None:
    if isinstance(value, Exception):
        future.set_exception(value)
    else:
        future.set_result(value)
