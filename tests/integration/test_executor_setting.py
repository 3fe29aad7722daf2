"""SWITCHBOARD_EXECUTOR=graphql-core rules the planned executor out: every query runs on
graphql-core (counted as `disabled`), answering what the planned executor answers, and the
setting refuses values it does not know."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from switchboard.app import create_app
from switchboard.execution.executor import fallbacks
from switchboard.settings import ConfigError, Settings
from tests.support.contract import VARIABLES, query_operations

OPERATIONS = query_operations("dashboard", "mobile")


def test_the_setting_takes_planned_or_graphql_core_only() -> None:
    assert Settings.from_env({}).executor == "planned"
    assert Settings.from_env({"SWITCHBOARD_EXECUTOR": "graphql-core"}).executor == "graphql-core"
    with pytest.raises(ConfigError, match="SWITCHBOARD_EXECUTOR must be `planned` or"):
        Settings.from_env({"SWITCHBOARD_EXECUTOR": "fast"})


async def test_graphql_core_answers_every_query_as_the_planned_executor_does(
    settings: Settings, client: httpx.AsyncClient, token: Any
) -> None:
    bearer = {"authorization": f"Bearer {token('acme', 'marketer')}"}
    application = create_app(dataclasses.replace(settings, executor="graphql-core"))
    async with LifespanManager(application):
        assert application.state.graphql.execution.enabled is False
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as core:
            for name in ("DashboardOverview", "ApprovalQueue", "MobileHome"):
                body = {"query": OPERATIONS[name], "variables": dict(VARIABLES)}
                before = fallbacks["disabled"]
                reference = await core.post("/graphql", json=body, headers=bearer)
                assert fallbacks["disabled"] == before + 1, name
                planned = await client.post("/graphql", json=body, headers=bearer)
                assert fallbacks["disabled"] == before + 1, name  # the default app plans
                assert reference.status_code == planned.status_code == 200
                assert "errors" not in reference.json(), reference.text
                assert reference.content == planned.content, name
