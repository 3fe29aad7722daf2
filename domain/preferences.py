"""A user's preferences: small JSON values under short keys (written by
domain/store/preferences.py in one upsert)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from domain.errors import Rejected

KEY = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
MAX_VALUE_BYTES = 16_384


def encode_preference(key: str, value: Any) -> bytes:
    """The value as JSON, or Rejected for a key or a value that breaks a rule."""
    if not KEY.fullmatch(key):
        raise Rejected(
            "INVALID", "A key holds 1 to 100 letters, digits and . _ : - characters.", "key"
        )
    encoded = orjson.dumps(value)
    if len(encoded) > MAX_VALUE_BYTES:
        raise Rejected("INVALID", f"A value is at most {MAX_VALUE_BYTES} bytes of JSON.", "value")
    return encoded
