"""The read side's loaders: one batch per level, cached values, failures as aiodataloader's.

These drive `loaders.batching` with batch functions in memory (no database): what each
caller gets back, and which keys reach a batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from loaders.batching import BatchScheduler, ScheduledLoader


class Source:
    """A batch function that records its batches; a key "bad" fails on its own, and a
    batch containing "boom" fails as a whole."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    async def load(self, keys: Sequence[Any]) -> list[Any]:
        self.batches.append(list(keys))
        await asyncio.sleep(0)  # answers later, as a statement does
        if "boom" in keys:
            raise RuntimeError("the statement failed")
        return [ValueError(f"no {key}") if key == "bad" else key.upper() for key in keys]


async def test_a_level_of_loads_is_one_batch_and_values_are_cached() -> None:
    source = Source()
    loader = ScheduledLoader(source.load, BatchScheduler())
    first, second = loader.load("a"), loader.load_many(["b", "a", "c"])
    assert await first == "A"
    assert await second == ["B", "A", "C"]
    assert source.batches == [["a", "b", "c"]]
    # Loaded keys answer at once, from the cache, with no batch.
    again = loader.load_many(["c", "a"])
    assert again.done() and again.result() == ["C", "A"]
    assert await loader.load("b") == "B"
    assert source.batches == [["a", "b", "c"]]


async def test_a_failed_key_fails_alone_and_a_failed_batch_is_asked_again() -> None:
    source = Source()
    loader = ScheduledLoader(source.load, BatchScheduler())
    values = await loader.load_many(["x", "bad"])
    assert values[0] == "X" and isinstance(values[1], ValueError)
    with pytest.raises(ValueError, match="no bad"):
        await loader.load("bad")

    failing = loader.load("boom")
    group = loader.load_many(["boom", "y"])
    with pytest.raises(RuntimeError, match="the statement failed"):
        await failing
    assert [type(value) for value in await group] == [RuntimeError, RuntimeError]
    # Not cached: the next load of such a key runs a batch again.
    assert await loader.load("y") == "Y"
    assert source.batches[-1] == ["y"]


async def test_a_primed_value_needs_no_batch_and_never_replaces_a_loaded_one() -> None:
    source = Source()
    loader = ScheduledLoader(source.load, BatchScheduler())
    assert await loader.load("a") == "A"
    loader.prime("a", "primed").prime("p", "P!").prime("n", None)
    assert await loader.load_many(["a", "p", "n"]) == ["A", "P!", None]
    assert source.batches == [["a"]]


async def test_none_is_not_a_key() -> None:
    loader = ScheduledLoader(Source().load, BatchScheduler())
    with pytest.raises(TypeError):
        loader.load(None)
    with pytest.raises(TypeError):
        loader.load_many(["a", None])
    assert await loader.load("a") == "A"  # the keys before it were asked for
