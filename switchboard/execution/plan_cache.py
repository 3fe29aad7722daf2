"""The plan cache: plans of this process, least recently used first out, bounded by count
and by (estimated) bytes.

A plan's key is the document's sha256, the operation's name and the values of the
variables its @skip/@include read: two requests of one document that include different
fields get different plans, two that differ only in other variables share one. The shape
of each (document, operation) (which variables those are, or why it cannot be planned) is
kept in the same cache under a shorter key.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

MAX_PLANS = 2000
MAX_PLAN_BYTES = 64 * 1024 * 1024
SHAPE_BYTES = 200


class PlanCache:
    def __init__(self, max_entries: int = MAX_PLANS, max_bytes: int = MAX_PLAN_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[Any, ...]) -> Any:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def put(self, key: tuple[Any, ...], value: Any, size: int) -> None:
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.bytes -= previous[1]
        self._entries[key] = (value, size)
        self.bytes += size
        while self._entries and (
            len(self._entries) > self.max_entries or self.bytes > self.max_bytes
        ):
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
