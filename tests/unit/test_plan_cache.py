"""The plan cache stays within its bounds: entries by count and by estimated bytes, the
least recently used out first."""

from __future__ import annotations

from switchboard.execution.plan_cache import PlanCache


def test_the_least_recently_used_plan_goes_first_past_the_count() -> None:
    cache = PlanCache(max_entries=3, max_bytes=10_000)
    for name in "abc":
        cache.put((name,), name, 10)
    assert cache.get(("a",)) == "a"  # now the most recently used
    cache.put(("d",), "d", 10)
    assert cache.get(("b",)) is None
    assert [cache.get((n,)) for n in "acd"] == ["a", "c", "d"]
    assert len(cache) == 3 and cache.bytes == 30


def test_plans_are_evicted_past_the_byte_bound_and_a_replaced_one_counts_once() -> None:
    cache = PlanCache(max_entries=100, max_bytes=1_000)
    cache.put(("a",), "a", 400)
    cache.put(("b",), "b", 400)
    cache.put(("b",), "b2", 500)
    assert cache.bytes == 900 and cache.get(("b",)) == "b2"
    cache.put(("c",), "c", 300)
    assert cache.get(("a",)) is None
    assert cache.bytes == 800 and len(cache) == 2
