"""GraphQL over HTTP conformance: graphql-http's `auditServer` against the real gateway.

The gateway is served by uvicorn on a free 127.0.0.1 port; the audit runs in Node 22 from
tests/js/ (`npm ci` there, which `scripts/test` does when node_modules is missing) and
every audit, MUST, SHOULD and MAY alike, has to pass.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
from starlette.applications import Starlette

from switchboard.settings import PROJECT_DIR
from tests.support.live import served

JS_DIR = PROJECT_DIR / "tests/js"
NODE = JS_DIR / "node_modules/.bin/node"
AUDIT_TIMEOUT_S = 120


async def _audit(url: str, token: str) -> list[dict[str, Any]]:
    assert NODE.exists(), f"{NODE} is missing: run `npm ci --prefix tests/js` (scripts/test does)"
    process = await asyncio.create_subprocess_exec(
        str(NODE),
        "audit.mjs",
        url,
        cwd=JS_DIR,
        env={**os.environ, "SWITCHBOARD_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), AUDIT_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode()
    results: list[dict[str, Any]] = orjson.loads(out)
    return results


async def test_every_graphql_over_http_audit_passes(app: Starlette, token: Any) -> None:
    async with served(app) as ws_url:
        results = await _audit(ws_url.replace("ws://", "http://", 1), token("acme"))
    assert results, "the audit reported nothing"
    failed = [result for result in results if result["status"] != "ok"]
    assert any(r["name"].startswith("MUST") for r in results), results
    assert not failed, f"{len(failed)} of {len(results)} audits failed:\n" + "\n".join(
        f"{r['id']} {r['name']}: {r['reason']} (got {r['responseStatus']}: "
        f"{r['responseBody'][:200]})"
        for r in failed
    )
