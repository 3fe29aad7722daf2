"""Keyset pagination: the `first` bounds and the opaque cursor format of every connection.

A cursor holds the position of a row in its connection's order: the sort value and the
row's id. It says nothing of the tenant; every page query is tenant-scoped, so a cursor
taken from another tenant's page only positions within the caller's own rows.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson

from domain.errors import BadUserInput

MAX_FIRST = 100


@dataclass(frozen=True, slots=True)
class Page:
    """What one connection page asks for: at most `first` rows after position `after`."""

    first: int
    after: tuple[datetime, uuid.UUID] | None


def page_args(first: int | None, after: str | None, default_first: int = 20) -> Page:
    if first is None:
        first = default_first
    if not 0 <= first <= MAX_FIRST:
        raise BadUserInput(f"`first` must be between 0 and {MAX_FIRST}, got {first}.")
    return Page(first=first, after=decode_cursor(after) if after is not None else None)


def encode_cursor(sort_value: datetime, row_id: uuid.UUID) -> str:
    raw = orjson.dumps([sort_value.isoformat(), row_id.hex])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sort_text, id_hex = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        sort_value = datetime.fromisoformat(sort_text)
        if sort_value.tzinfo is None:
            raise ValueError("naive time")
        return sort_value, uuid.UUID(hex=id_hex)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise BadUserInput("Malformed cursor.") from None
