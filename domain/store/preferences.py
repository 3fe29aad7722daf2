"""Preferences' rows: setPreference's one upsert (the rules: domain/preferences.py)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.preferences import encode_preference

UPSERT_SQL = text(
    "INSERT INTO preferences (user_id, key, value, updated_at) "
    "VALUES (:user_id, :key, CAST(:value AS jsonb), now()) "
    "ON CONFLICT (user_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now() "
    "RETURNING key, value, updated_at"
)


async def set_preference(conn: AsyncConnection, user_id: uuid.UUID, key: str, value: Any) -> Any:
    encoded = encode_preference(key, value)
    return (
        await conn.execute(UPSERT_SQL, {"user_id": user_id, "key": key, "value": encoded.decode()})
    ).one()
