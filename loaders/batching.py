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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiodataloader import DataLoader, Loader, dispatch_queue_batch

# Loop iterations without a new load before a level is considered complete. graphql-core
# needs at most 3 hops from a resolved future to the next level's `load` calls.
QUIET_HOPS = 4


class BatchScheduler:
    """Dispatches the queued loaders of one request, a level at a time."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queued: list[DataLoader[Any, Any]] = []
        self._in_flight = 0
        self._loads = 0  # every load so far; a change means loads are still arriving
        self._waiting = False
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def queued(self, loader: DataLoader[Any, Any]) -> None:
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
            queue, loader._queue = loader._queue, []
            self._in_flight += 1
            task = asyncio.ensure_future(self._run(loader, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, loader: DataLoader[Any, Any], queue: list[Loader]) -> None:
        try:
            await dispatch_queue_batch(loader, queue)
        finally:
            if isinstance(loader, ScheduledLoader) and loader._groups:
                loader.settle()
            self._in_flight -= 1
            if not self._in_flight and self._queued:
                self.loaded()


class ScheduledLoader(DataLoader[Any, Any]):
    """A DataLoader whose dispatch the request's scheduler decides."""

    def __init__(
        self,
        batch_load_fn: Callable[[Sequence[Any]], Awaitable[list[Any]]],
        scheduler: BatchScheduler,
    ) -> None:
        super().__init__(batch_load_fn)  # type: ignore[arg-type]
        self._scheduler = scheduler
        self._create_future = self.loop.create_future
        # load_many's futures still waiting: (each key's future, the list's future).
        self._groups: list[tuple[list[asyncio.Future[Any]], asyncio.Future[list[Any]]]] = []

    def load(self, key: Any) -> asyncio.Future[Any]:
        """DataLoader.load for this loader's settings (cached, keys their own cache keys),
        in fewer steps: a DashboardOverview makes about 650 loads."""
        future = self._cache.get(key)
        if future is not None:
            return future
        if key is None:
            return super().load(key)  # raises its TypeError
        future = self._cache[key] = self._create_future()
        self.do_resolve_reject(key, future)
        return future

    def load_many(self, keys: list[Any]) -> asyncio.Future[list[Any]]:
        """The values of `keys` (a failed key's exception in its place), in one future:
        the planned executor loads a level's keys with one call and one await instead of
        a future per object. The keys are cached and batched as `load` would."""
        cache = self._cache
        queue = self._queue
        queued = len(queue)
        futures = []
        for key in keys:
            future = cache.get(key)
            if future is None:
                if key is None:
                    super().load(key)  # raises its TypeError
                future = cache[key] = self._create_future()
                queue.append(Loader(key, future))
            futures.append(future)
        if len(queue) != queued:
            if not queued:
                self._scheduler.queued(self)
            else:
                self._scheduler.loaded()
        group: asyncio.Future[list[Any]] = self._create_future()
        self._groups.append((futures, group))
        self.settle()  # every key cached and loaded already: the values are at hand
        return group

    def settle(self) -> None:
        """Answer each `load_many` whose keys have all been loaded (called after each
        batch of this loader, whose futures are the only ones a group can wait on)."""
        waiting = []
        for futures, group in self._groups:
            if all(future.done() for future in futures):
                if not group.done():
                    group.set_result([_value(future) for future in futures])
            else:
                waiting.append((futures, group))
        self._groups = waiting

    def do_resolve_reject(self, key: Any, future: asyncio.Future[Any]) -> None:
        self._queue.append(Loader(key, future))
        if len(self._queue) == 1:
            self._scheduler.queued(self)
        else:
            self._scheduler.loaded()


def _value(future: asyncio.Future[Any]) -> Any:
    """A done future's value, or its exception (marked retrieved)."""
    error = future.exception()
    return error if error is not None else future.result()
