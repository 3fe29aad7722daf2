"""GraphiQL in a real browser (headless Chromium): in development mode the gateway serves the
page and its assets itself, so it works offline; it opens with the demo marketer's token and
the contract's dashboard and subscription operations as tabs, runs DashboardOverview, and runs
a subscription over graphql-transport-ws with the headers tab's token. Without the demo user it
opens with no token; in production neither the page nor its assets exist.

`SWITCHBOARD_GRAPHIQL_SCREENSHOT=docs/graphiql.png` also saves the README's screenshot.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from domain.store.events import record_event
from switchboard.app import create_app
from switchboard.devdata.seed import stable_id
from switchboard.graphiql import STATIC_PATH
from switchboard.graphiql import page as graphiql_page
from switchboard.infra.db import Database, create_engine
from switchboard.infra.migrate import upgrade_to_head_async
from switchboard.settings import PROJECT_DIR, Settings
from tests.conftest import Servers, _drop_database, _fresh_database
from tests.support.browser import Browser, Page
from tests.support.edge import PRODUCTION_SECRET
from tests.support.live import GatewayProcess

OPERATIONS = PROJECT_DIR / "contract/operations"
DASHBOARD = sorted(p.stem for p in (OPERATIONS / "dashboard").glob("*.graphql"))
SUBSCRIPTIONS = sorted(p.stem for p in (OPERATIONS / "subscriptions").glob("*.graphql"))
# The tabs' order: DashboardOverview, the other dashboard operations, the subscriptions.
TAB_NAMES = ["DashboardOverview", *(n for n in DASHBOARD if n != "DashboardOverview")]
TAB_NAMES += SUBSCRIPTIONS
SCREENSHOT = os.environ.get("SWITCHBOARD_GRAPHIQL_SCREENSHOT")
TABS = "[...document.querySelectorAll('.graphiql-tab')].map((tab) => tab.innerText.trim())"
RESPONSE = "document.querySelector('.graphiql-response')?.innerText ?? ''"
CONFIG = "JSON.parse(document.getElementById('switchboard-graphiql-config').textContent)"
STORED_TABS = f"JSON.parse(localStorage.getItem({CONFIG}.storage + ':graphiql:tabState'))"


def _editor(which: str) -> str:
    """The CodeMirror of GraphiQL's query, variables or headers editor."""
    if which == "query":
        return "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
    index = ["variables", "headers"].index(which)  # one tool section, both editors in it
    return f"document.querySelectorAll('.graphiql-editor-tool .CodeMirror')[{index}].CodeMirror"


@pytest.fixture(scope="module")
async def development(servers: Servers, tmp_path_factory: Any) -> AsyncIterator[str]:
    """The gateway in development mode in a process of its own; yields its base URL. The edge's
    rate limit and response cache are off: their Redis keys would outlive this module."""
    log = tmp_path_factory.mktemp("graphiql") / "gateway.log"
    process = GatewayProcess(
        servers.database_url,
        servers.redis_url,
        log,
        SWITCHBOARD_MODE="development",
        SWITCHBOARD_RATE_LIMIT="0",
        SWITCHBOARD_RESPONSE_CACHE="0",
    )
    try:
        await process.ready()
        yield f"http://127.0.0.1:{process.port}"
    finally:
        process.stop()


async def _open(page: Page, base: str) -> list[str]:
    """Open GraphiQL; once its tabs show, their titles."""
    await page.open(f"{base}/graphql")
    return await page.wait_until(f"(() => {{ const t = {TABS}; return t.length ? t : null; }})()")


async def _switch_to(page: Page, tab: str) -> None:
    """Click a tab; once GraphiQL has read its operation (it does so 100 ms after a change)."""
    await page.click(f"#graphiql-session-tab-{TAB_NAMES.index(tab)}")
    await page.wait_until(f"{_editor('query')}.operationName === {orjson.dumps(tab).decode()}")


async def _response_with(page: Page, *needles: str) -> str:
    """The result pane's text, once it shows every needle."""
    checks = " && ".join(f"t.includes({orjson.dumps(n).decode()})" for n in needles)
    return await page.wait_until(
        f"(() => {{ const t = {RESPONSE}; return {checks} ? t : null; }})()"
    )


def _left_localhost(page: Page, base: str) -> list[str]:
    """Every request or socket the page opened anywhere but the gateway's origin."""
    origin = urlsplit(base).netloc
    return [u for u in page.requested if not u.startswith("data:") and urlsplit(u).netloc != origin]


async def test_graphiql_runs_dashboard_overview_offline_with_the_demo_token(
    development: str, tmp_path: Path
) -> None:
    async with Browser.launch(tmp_path / "profile") as page:
        tabs = await _open(page, development)
        assert tabs == TAB_NAMES
        headers = orjson.loads(await page.evaluate(f"{_editor('headers')}.getValue()"))
        assert headers["authorization"].startswith("Bearer ")
        variables = orjson.loads(await page.evaluate(f"{_editor('variables')}.getValue()"))
        assert set(variables) == {"monthStart", "monthEnd"}

        await page.click(".graphiql-execute-button")
        result = await _response_with(page, "Acme Outdoor Co.")
        assert '"displayName": "Maya Marsh"' in result  # the demo marketer
        assert '"role": "MARKETER"' in result
        if SCREENSHOT:
            await page.screenshot(PROJECT_DIR / SCREENSHOT)

        # Another tab, its variables filled from the demo data: the first active campaign.
        await _switch_to(page, "CampaignDetail")
        await page.click(".graphiql-execute-button")
        await _response_with(page, '"name": "Spring Trail Launch"', '"status": "ACTIVE"')

        assert f"{development}{STATIC_PATH}/graphiql.min.js" in page.requested
        assert _left_localhost(page, development) == []


async def test_graphiql_runs_a_subscription_with_the_headers_tab_token(
    development: str, servers: Servers, tmp_path: Path
) -> None:
    # What a change to the campaign records in its transaction; replayed with after 0-0.
    engine = create_async_engine(servers.database_url)
    async with engine.begin() as conn:
        await record_event(
            conn,
            stable_id("acme", "tenant"),
            "CAMPAIGN_UPDATED",
            campaign_id=stable_id("acme", "campaign", 0),  # "Spring Trail Launch"
        )
    await engine.dispose()

    async with Browser.launch(tmp_path / "profile") as page:
        await _open(page, development)
        await _switch_to(page, "TenantEvents")
        # As if typed: the subscription replays the tenant's log, campaign changes only.
        types = '{"types": ["CAMPAIGN_UPDATED"], "after": "0-0"}'
        await page.evaluate(f"{_editor('variables')}.setValue({orjson.dumps(types).decode()})")
        await page.click(".graphiql-execute-button")
        await _response_with(page, '"type": "CAMPAIGN_UPDATED"', "Spring Trail Launch")

        socket = development.replace("http://", "ws://") + "/graphql"
        assert socket in page.requested
        assert _left_localhost(page, development) == []


async def test_opening_again_keeps_the_tabs_and_brings_a_fresh_token(
    development: str, tmp_path: Path
) -> None:
    async with Browser.launch(tmp_path / "profile") as page:
        await _open(page, development)
        first = await page.evaluate(f"{CONFIG}.headers")
        await _switch_to(page, "SpendDashboard")
        # GraphiQL stores its tabs half a second after a change.
        await page.wait_until(
            f"{STORED_TABS}?.activeTabIndex === {TAB_NAMES.index('SpendDashboard')}"
        )
        tabs = await _open(page, development)  # again: the same URL, the same profile
        assert tabs == TAB_NAMES  # the stored tabs, no extra one
        active = await page.evaluate("document.querySelector('.graphiql-tab-active').innerText")
        assert active.strip() == "SpendDashboard"
        fresh = await page.evaluate(f"{CONFIG}.headers")
        assert fresh != first and "Bearer " in fresh
        assert await page.wait_until(f"{_editor('headers')}.getValue()") == fresh
        variables = orjson.loads(await page.evaluate(f"{_editor('variables')}.getValue()"))
        assert set(variables) == {"from", "to"}
        await _switch_to(page, "ApprovalQueue")  # every tab has the fresh token
        assert await page.evaluate(f"{_editor('headers')}.getValue()") == fresh


async def test_graphiql_opens_without_a_token_when_there_is_no_demo_user(
    servers: Servers, settings: Settings
) -> None:
    name = f"switchboard_graphiql_{uuid.uuid4().hex[:8]}"
    url = await _fresh_database(servers.database_url, name)
    db = Database(create_engine(settings, url))
    try:
        await upgrade_to_head_async(url)  # the schema, and no data
        html = await graphiql_page.render(settings, db)
    finally:
        await db.dispose()
        await _drop_database(servers.database_url, name)
    assert f'<script src="{STATIC_PATH}/graphiql.min.js">' in html
    start = html.index('<script id="switchboard-graphiql-config" type="application/json">')
    config = orjson.loads(html[html.index(">", start) + 1 :].split("<")[0])
    assert config["headers"] == ""  # no token
    assert config["tabs"][0]["query"].startswith("query DashboardOverview(")
    assert len(config["tabs"]) == len(TAB_NAMES)


async def test_production_serves_neither_graphiql_nor_its_assets(servers: Servers) -> None:
    # No lifespan: neither answer needs the database or Redis.
    settings = Settings(
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        mode="production",
        jwt_secret=PRODUCTION_SECRET,
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        page = await client.get("/graphql", headers={"accept": "text/html"})
        asset = await client.get(f"{STATIC_PATH}/graphiql.min.js")
    assert page.status_code == 404 and "<html" not in page.text.lower()
    assert asset.status_code == 404


async def test_development_serves_the_assets_and_their_licences(development: str) -> None:
    async with httpx.AsyncClient(base_url=development) as http:
        script = await http.get(f"{STATIC_PATH}/graphiql.min.js")
        licences = await http.get(f"{STATIC_PATH}/THIRD_PARTY_LICENSES.txt")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert licences.status_code == 200 and "==== graphiql@" in licences.text
