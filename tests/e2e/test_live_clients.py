"""The platform's real clients of live events over plain HTTP, against a gateway on a real
port: the `graphql-sse` npm client in both modes and Apollo Client's HttpLink (multipart
subscriptions), in Node (tests/js/live_clients.mjs), and graphql-sse's browser build in
headless Chromium, the dashboard's case. Each receives the contract's TenantEvents and
ActivityStream in order, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from domain.ids import to_global_id
from switchboard.settings import PROJECT_DIR
from tests.conftest import Servers
from tests.e2e.test_live import REPORT, create_campaign
from tests.support.browser import Browser
from tests.support.jobs import Tenant, fresh_tenant, new_work, wait_for
from tests.support.live import CONTRACT, TENANT_EVENTS, served
from tests.support.streams import http_base

JS_DIR = PROJECT_DIR / "tests/js"
NODE = JS_DIR / "node_modules/.bin/node"
SCRIPT = JS_DIR / "live_clients.mjs"
UMD = JS_DIR / "node_modules/graphql-sse/umd/graphql-sse.min.js"
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
async def tenants(servers: Servers) -> tuple[Tenant, Tenant]:
    return (
        await fresh_tenant(servers.database_url, "clients-a"),
        await fresh_tenant(servers.database_url, "clients-b"),
    )


class WithPage:
    """The gateway, plus a page and graphql-sse's browser build at the same origin."""

    def __init__(self, app: Starlette, page: bytes) -> None:
        self.app, self.page = app, page
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        files = {
            "/live.html": (self.page, b"text/html"),
            "/graphql-sse.js": (UMD.read_bytes(), b"text/javascript"),
        }
        found = files.get(scope.get("path", "")) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        body, media = found
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", media)]}
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
async def base(app: Starlette, token: Any, tenants: tuple[Tenant, Tenant]) -> AsyncIterator[str]:
    page = PAGE.replace("TOKEN", token(tenants[0].slug)).replace(
        "QUERY", orjson.dumps(TENANT_EVENTS).decode()
    )
    async with served(WithPage(app, page.encode())) as ws_url:  # type: ignore[arg-type]
        yield http_base(ws_url)


async def members(app: Starlette, count: int) -> bool:
    groups = [g for by_key in app.state.hub.streams.values() for g in by_key.values()]
    return sum(len(g.members) for g in groups) == count


class NodeClient:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def results(self, count: int) -> list[dict[str, Any]]:
        got = []
        for _ in range(count):
            assert self.process.stdout is not None
            line = await asyncio.wait_for(self.process.stdout.readline(), DEADLINE_S)
            assert line, "the client ended early"
            message = orjson.loads(line)
            assert "next" in message, message
            assert not message["next"].get("errors"), message
            got.append(message["next"]["data"])
        return got


async def node_client(
    mode: str, base: str, token: str, document: Path, variables: dict[str, Any], count: int
) -> NodeClient:
    assert NODE.exists(), f"{NODE} is missing: run `npm ci --prefix tests/js` (scripts/test does)"
    process = await asyncio.create_subprocess_exec(
        str(NODE),
        str(SCRIPT),
        mode,
        base,
        token,
        str(document),
        orjson.dumps(variables).decode(),
        str(count),
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
    )
    return NodeClient(process)


@pytest.mark.parametrize("mode", ["sse-distinct", "sse-single", "apollo"])
async def test_the_js_clients_receive_tenant_events_in_order_once(
    base: str, app: Starlette, tenants: tuple[Tenant, Tenant], gql: Any, token: Any, mode: str
) -> None:
    slug = tenants[0].slug
    names = [f"{mode} {n}" for n in range(4)]
    before = sum(len(g.members) for by in app.state.hub.streams.values() for g in by.values())
    client = await node_client(
        mode, base, token(slug), CONTRACT / "TenantEvents.graphql", {}, len(names)
    )
    try:
        await wait_for(lambda: members(app, before + 1), timeout=DEADLINE_S)
        for name in names:
            await create_campaign(gql, token(slug), name)
        results = await client.results(len(names))
        assert await asyncio.wait_for(client.process.wait(), DEADLINE_S) == 0
    finally:
        if client.process.returncode is None:
            client.process.kill()
            await client.process.wait()
    events = [r["tenantEvents"] for r in results]
    assert [e["campaign"]["name"] for e in events] == names
    ids = [tuple(map(int, e["id"].split("-"))) for e in events]
    assert ids == sorted(set(ids))
    await wait_for(lambda: members(app, before), timeout=DEADLINE_S)  # the client's gone


@pytest.mark.parametrize("mode", ["sse-distinct", "sse-single", "apollo"])
async def test_the_js_clients_follow_an_activity_stream(
    base: str,
    app: Starlette,
    tenants: tuple[Tenant, Tenant],
    gql: Any,
    token: Any,
    agent_token: Any,
    db_conn: Any,
    mode: str,
) -> None:
    tenant = tenants[1]
    (activity,) = await new_work(db_conn, tenant, "COPYWRITER")
    gid = to_global_id("Activity", activity)
    agent = agent_token(tenant.slug, "COPYWRITER")
    before = sum(len(g.members) for by in app.state.hub.streams.values() for g in by.values())
    client = await node_client(
        mode, base, token(tenant.slug), CONTRACT / "ActivityStream.graphql", {"activityId": gid}, 4
    )
    try:
        await wait_for(lambda: members(app, before + 1), timeout=DEADLINE_S)
        for report in (
            {"status": "RUNNING", "chunk": "Hello "},
            {"chunk": "world"},
            {"chunk": "."},
        ):
            response = await gql(REPORT, {"input": {"activityId": gid, **report}}, agent)
            assert response.json()["data"]["reportActivityProgress"]["userErrors"] == []
        events = [r["activityStream"] for r in await client.results(4)]
    finally:
        if client.process.returncode is None:
            client.process.kill()
            await client.process.wait()
    assert [(e["kind"], e["text"] or e["status"]) for e in events] == [
        ("STATUS", "RUNNING"),
        ("TOKEN", "Hello "),
        ("TOKEN", "world"),
        ("TOKEN", "."),
    ]


PAGE = """<!doctype html><html><head><script src="/graphql-sse.js"></script></head><body>
<script>
  window.received = [];
  window.problems = [];
  const client = graphqlSse.createClient({
    url: location.origin + "/graphql/stream",
    headers: { authorization: "Bearer TOKEN" },
    singleConnection: true,
  });
  client.subscribe({ query: QUERY }, {
    next: (result) => window.received.push(result),
    error: (error) => window.problems.push(String(error)),
    complete: () => {},
  });
</script></body></html>"""


async def test_the_dashboard_in_a_browser_receives_tenant_events_over_sse(
    base: str, app: Starlette, tenants: tuple[Tenant, Tenant], gql: Any, token: Any, tmp_path: Path
) -> None:
    slug = tenants[0].slug
    names = [f"Browser {n}" for n in range(3)]
    before = sum(len(g.members) for by in app.state.hub.streams.values() for g in by.values())
    async with Browser.launch(tmp_path / "profile") as page:
        await page.open(f"{base}/live.html")
        await wait_for(lambda: members(app, before + 1), timeout=DEADLINE_S)
        for name in names:
            await create_campaign(gql, token(slug), name)
        await page.wait_until(f"window.received.length >= {len(names)}")
        received = await page.evaluate("JSON.stringify(window.received)")
        assert await page.evaluate("window.problems.length") == 0
    events = [r["data"]["tenantEvents"] for r in orjson.loads(received)]
    assert [e["campaign"]["name"] for e in events] == names
