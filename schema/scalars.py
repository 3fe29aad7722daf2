"""The contract's custom scalars: DateTime, Date, Decimal (exact, as a string), BigInt and JSON."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as PyDecimal
from decimal import InvalidOperation
from typing import Any, NewType

import orjson
import strawberry

from domain.errors import BadUserInput


def serialize_datetime(value: dt.datetime) -> str:
    if value.tzinfo is dt.UTC:
        # PostgreSQL's timestamptz arrives in UTC: orjson writes isoformat()'s text with "Z"
        # in a quarter of the time (a DashboardOverview serializes about 270 of them).
        return orjson.dumps(value, option=orjson.OPT_UTC_Z)[1:-1].decode()
    text = value.astimezone(dt.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_datetime(value: Any) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise BadUserInput(f"Not an ISO 8601 date-time: {str(value)[:60]!r}") from None
    if parsed.tzinfo is None:
        raise BadUserInput(f"A DateTime needs an explicit UTC offset: {value[:60]!r}")
    return parsed


def parse_date(value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise BadUserInput(f"Not an ISO 8601 date: {str(value)[:60]!r}") from None


def parse_decimal(value: Any) -> PyDecimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadUserInput('A Decimal is a string such as "12.50".')
    try:
        parsed = PyDecimal(value)
    except InvalidOperation:
        raise BadUserInput(f"Not a decimal amount: {str(value)[:60]!r}") from None
    if not parsed.is_finite():
        raise BadUserInput("A Decimal must be finite.")
    return parsed


# The largest whole number a JSON number carries exactly in every client (JavaScript's).
MAX_BIG_INT = 2**53 - 1


def parse_big_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BIG_INT:
        raise BadUserInput(f"A BigInt is a whole number from 0 to {MAX_BIG_INT}.")
    return value


def serialize_big_int(value: int) -> int:
    if not 0 <= value <= MAX_BIG_INT:
        # Sums of tokens would need a trillion calls of the largest size to get here.
        raise ValueError(f"BigInt cannot represent {value}")
    return int(value)


DateTime = NewType("DateTime", dt.datetime)
Date = NewType("Date", dt.date)
Decimal = NewType("Decimal", PyDecimal)
BigInt = NewType("BigInt", int)
JSON = NewType("JSON", object)

# Passed to StrawberryConfig(scalar_map=...) by the schema.
SCALAR_MAP = {
    DateTime: strawberry.scalar(
        name="DateTime",
        description=(
            "An instant in time, ISO 8601 with an explicit UTC offset, e.g. 2026-11-22T14:05:00Z."
        ),
        serialize=serialize_datetime,
        parse_value=parse_datetime,
    ),
    Date: strawberry.scalar(
        name="Date",
        description="A calendar date, ISO 8601, e.g. 2026-11-22.",
        serialize=lambda value: value.isoformat(),
        parse_value=parse_date,
    ),
    Decimal: strawberry.scalar(
        name="Decimal",
        description=(
            'An exact decimal amount of US dollars, serialised as a string, e.g. "12.403117".'
        ),
        serialize=str,
        parse_value=parse_decimal,
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        description=(
            "A whole number from 0 to 2^53 - 1, serialised as a JSON number (sums of tokens "
            "outgrow a 32-bit Int)."
        ),
        serialize=serialize_big_int,
        parse_value=parse_big_int,
    ),
    JSON: strawberry.scalar(
        name="JSON",
        description="Any JSON value.",
        serialize=lambda value: value,
        parse_value=lambda value: value,
    ),
}
# The domain's dataclasses (e.g. domain.llm_calls.LlmCallFigures, which schema types extend)
# say `decimal.Decimal`: the same scalar.
SCALAR_MAP[PyDecimal] = SCALAR_MAP[Decimal]
