"""Summaries of timings, shared by the benchmarks: percentiles by nearest rank."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def nearest_rank(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `fraction` of all
    values at or below it (fraction 0.99 for p99)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]


def summary(values: Sequence[float], percentiles: Sequence[int] = (90, 99)) -> dict[str, float]:
    """n, p50 (the median), the given percentiles and the maximum, rounded to 0.01."""
    result: dict[str, float] = {"n": len(values), "p50": round(statistics.median(values), 2)}
    for p in percentiles:
        result[f"p{p}"] = round(nearest_rank(values, p / 100), 2)
    result["max"] = round(max(values), 2)
    return result
