"""Cache hit rate: every cache (the edge's response cache, persisted documents, the auth
caches) reports each look-up here.

    cache.record("response", hit=True)

`switchboard_cache_requests_total{cache, result}` with result `hit` or `miss`; the hit
rate of a cache is `sum(rate(...{result="hit"}[5m])) / sum(rate(...[5m]))` (the dashboard
shows it per cache). `cache` names a cache of the code, never a key.
"""

from __future__ import annotations

from typing import Any

from switchboard.observability import metrics

_children: dict[tuple[str, bool], Any] = {}


def record(cache: str, hit: bool) -> None:
    counter = _children.get((cache, hit))
    if counter is None:
        counter = metrics.CACHE_REQUESTS.labels(cache, "hit" if hit else "miss")
        _children[(cache, hit)] = counter
    counter.inc()
