"""Spend windows: how a half-open window [from, to) splits into rollup hours and raw edges.

Spend is answered from `llm_spend_hourly` for the whole hours inside the window and from
raw `llm_calls` rows only for the partial hours at its two edges, so every answer equals
the exact sum over the raw rows while reading at most two hours of them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from domain.errors import BadUserInput

HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SpendWindow:
    start: dt.datetime  # inclusive
    end: dt.datetime  # exclusive
    hours_start: dt.datetime  # first whole hour inside the window
    hours_end: dt.datetime  # end of the last whole hour inside the window


def floor_hour(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: dt.datetime) -> dt.datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


def spend_window(start: dt.datetime, end: dt.datetime) -> SpendWindow:
    if end < start:
        raise BadUserInput("`to` must not be before `from`.")
    hours_start, hours_end = ceil_hour(start), floor_hour(end)
    if hours_start >= hours_end:
        # No whole hour inside: the raw rows answer alone.
        hours_start = hours_end = end
    return SpendWindow(start=start, end=end, hours_start=hours_start, hours_end=hours_end)


def month_window(now: dt.datetime) -> SpendWindow:
    """The current UTC calendar month."""
    first = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return spend_window(first, following)


def role_label(role: str) -> str:
    """`PAID_ADS_MANAGER` as a person reads it: `Paid ads manager`."""
    return role.replace("_", " ").capitalize()
