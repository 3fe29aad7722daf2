"""A user's preferences: small JSON values under short keys, written in one upsert."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import Rejected

KEY = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
MAX_VALUE_BYTES = 16_384

UPSERT_SQL = text(
    "INSERT INTO preferences (user_id, key, value, updated_at) "
    "VALUES (:user_id, :key, CAST(:value AS jsonb), now()) "
    "ON CONFLICT (user_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now() "
    "RETURNING key, value, updated_at"
)


async def set_preference(conn: AsyncConnection, user_id: uuid.UUID, key: str, value: Any) -> Any:
    if not KEY.fullmatch(key):
        raise Rejected(
            "INVALID", "A key holds 1 to 100 letters, digits and . _ : - characters.", "key"
        )
    encoded = orjson.dumps(value)
    if len(encoded) > MAX_VALUE_BYTES:
        raise Rejected("INVALID", f"A value is at most {MAX_VALUE_BYTES} bytes of JSON.", "value")
    return (
        await conn.execute(UPSERT_SQL, {"user_id": user_id, "key": key, "value": encoded.decode()})
    ).one()
