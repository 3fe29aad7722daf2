"""The Server-Timing header: where a request's server time went.

Metrics (milliseconds, `dur`): `auth` (authentication), `rl` (rate limit), `doc` (finding
the document: persisted lookup and the document cache), `parse` (parsing, validating and
analysing during this request: 0 when the document was cached, as a persisted operation
always is), `exec` (execution), `total`; and `cache` with `desc` listing the response
cache's outcomes (`hit`, `miss`). perf/bench_edge.py reads it.
"""

from __future__ import annotations

import time


class ServerTiming:
    __slots__ = ("_last", "marks", "notes", "started")

    def __init__(self) -> None:
        self.started = self._last = time.perf_counter()
        self.marks: list[tuple[str, float]] = []
        self.notes: list[tuple[str, str]] = []

    def mark(self, name: str) -> None:
        """The time since the previous mark goes to `name`."""
        now = time.perf_counter()
        self.marks.append((name, now - self._last))
        self._last = now

    def add(self, name: str, seconds: float) -> None:
        self.marks.append((name, seconds))

    def note(self, name: str, description: str) -> None:
        self.notes.append((name, description))

    def total_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def header(self) -> str:
        parts = [f"{name};dur={seconds * 1000:.3f}" for name, seconds in self.marks]
        parts += [f'{name};desc="{description}"' for name, description in self.notes]
        parts.append(f"total;dur={self.total_ms():.3f}")
        return ", ".join(parts)
