"""Spend windows: how a half-open window [from, to) splits over the rollups and raw rows.

A window is answered from three sources, each for the part it covers exactly:
- `llm_spend_daily` for the whole UTC days inside the window;
- `llm_spend_hourly` for the whole hours before the first and after the last whole day;
- raw `llm_calls` rows only for the partial hours at the window's two edges.
So every answer equals the exact sum over the raw rows, while a 90-day window reads about
90 daily rows per key, at most 46 hourly rows and at most two hours of raw rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from domain.errors import BadUserInput

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
# Rollups split only this part of a window (a day's margin from datetime's own limits, so
# rounding to whole days never overflows); raw edge rows cover anything beyond it.
EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC) + DAY
LATEST = dt.datetime.max.replace(tzinfo=dt.UTC) - DAY
# No row can lie outside what a UTC datetime holds; windows are cut to it.
FIRST_INSTANT = dt.datetime.min.replace(tzinfo=dt.UTC)
LAST_INSTANT = dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class SpendWindow:
    start: dt.datetime  # inclusive
    end: dt.datetime  # exclusive
    hours_start: dt.datetime  # raw rows cover [start, hours_start)
    days_start: dt.datetime  # hourly rows cover [hours_start, days_start)
    days_end: dt.datetime  # daily rows cover [days_start, days_end)
    hours_end: dt.datetime  # hourly rows cover [days_end, hours_end); raw [hours_end, end)


def floor_hour(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: dt.datetime) -> dt.datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


def floor_day(moment: dt.datetime) -> dt.datetime:
    return floor_hour(moment).replace(hour=0)


def ceil_day(moment: dt.datetime) -> dt.datetime:
    floored = floor_day(moment)
    return floored if floored == moment else floored + DAY


def spend_window(start: dt.datetime, end: dt.datetime) -> SpendWindow:
    if end < start:
        raise BadUserInput("`to` must not be before `from`.")
    start, end = max(start, FIRST_INSTANT), min(end, LAST_INSTANT)
    inner_start, inner_end = max(start, EARLIEST), min(end, LATEST)
    if inner_start >= inner_end:
        return SpendWindow(start, end, end, end, end, end)  # the raw rows answer alone
    hours_start, hours_end = ceil_hour(inner_start), floor_hour(inner_end)
    if hours_start >= hours_end:
        return SpendWindow(start, end, end, end, end, end)  # no whole hour inside
    days_start, days_end = ceil_day(hours_start), floor_day(hours_end)
    if days_start >= days_end:
        # No whole day inside: hours and raw edges answer.
        days_start = days_end = hours_end
    return SpendWindow(start, end, hours_start, days_start, days_end, hours_end)


def month_window(now: dt.datetime) -> SpendWindow:
    """The current UTC calendar month."""
    first = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return spend_window(first, following)


def role_label(role: str) -> str:
    """`PAID_ADS_MANAGER` as a person reads it: `Paid ads manager`."""
    return role.replace("_", " ").capitalize()
