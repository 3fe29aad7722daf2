"""The audit log never delays a response, and a normal shutdown never loses an entry."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

from switchboard.app import create_app
from switchboard.settings import Settings
from tests.conftest import user_gid

SET_PREFERENCE = """mutation($key: String!) { setPreference(key: $key, value: true) {
  preference { key } userErrors { code } } }"""


async def test_entries_queued_at_shutdown_are_written(
    settings: Settings, token: Any, db_conn: asyncpg.Connection
) -> None:
    marker = f"audit.{uuid.uuid4().hex[:12]}"
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            for n in range(50):
                response = await client.post(
                    "/graphql",
                    json={"query": SET_PREFERENCE, "variables": {"key": f"{marker}.{n}"}},
                    headers={"authorization": f"Bearer {token('globex', 'viewer')}"},
                )
                assert response.json()["data"]["setPreference"]["userErrors"] == []
        # Leaving the lifespan is the normal shutdown: no flush is asked for here.
    written = await db_conn.fetch(
        "SELECT details->>'key' AS key, actor_kind, action FROM audit_logs "
        "WHERE action = 'setPreference' AND details->>'key' LIKE $1",
        f"{marker}.%",
    )
    assert sorted(r["key"] for r in written) == sorted(f"{marker}.{n}" for n in range(50))
    assert {(r["actor_kind"], r["action"]) for r in written} == {("USER", "setPreference")}
    user = uuid.UUID(hex=user_gid("globex", "viewer")[4:])
    await db_conn.execute(
        "DELETE FROM preferences WHERE user_id = $1 AND key LIKE $2", user, f"{marker}.%"
    )
