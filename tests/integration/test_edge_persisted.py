"""Persisted queries: the APQ round trip, trusted documents for mobile tokens, and documents
that are parsed and validated once per process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from switchboard.app import create_app
from switchboard.edge.persisted import ManifestError
from switchboard.settings import DEFAULT_MANIFEST, Settings
from tests.conftest import Servers
from tests.support.edge import (
    MANIFEST,
    MOBILE_HOME_ID,
    bearer,
    clear_edge_keys,
    codes,
    gateway,
    persisted,
    server_timing,
    sha256,
)


async def test_apq_round_trip(servers: Servers, token: Any) -> None:
    await clear_edge_keys(servers.redis_url, "apq:*")
    text = f"query Apq{uuid.uuid4().hex} {{ viewer {{ id }} tenant {{ slug }} }}"
    sha = sha256(text)
    auth = bearer(token("acme"))
    async with gateway(servers) as (_, client):
        # Not found: the client then sends the text along.
        missing = await client.post("/graphql", json={"extensions": persisted(sha)}, headers=auth)
        assert missing.status_code == 200
        assert codes(missing) == ["PERSISTED_QUERY_NOT_FOUND"]
        assert "data" not in missing.json()
        # Register: hash and text.
        registered = await client.post(
            "/graphql", json={"query": text, "extensions": persisted(sha)}, headers=auth
        )
        assert registered.status_code == 200, registered.text
        assert registered.json()["data"]["tenant"] == {"slug": "acme"}
        # Run by hash, over POST and over GET.
        by_hash = await client.post("/graphql", json={"extensions": persisted(sha)}, headers=auth)
        assert by_hash.json() == registered.json()
        params = {"extensions": orjson.dumps(persisted(sha)).decode()}
        by_get = await client.get("/graphql", params=params, headers=auth)
        assert by_get.status_code == 200 and by_get.json() == registered.json()
        # A hash that is not the text's: refused, and nothing is registered under it.
        wrong = sha256(text + " ")
        mismatch = await client.post(
            "/graphql", json={"query": text, "extensions": persisted(wrong)}, headers=auth
        )
        assert mismatch.status_code == 400 and codes(mismatch) == ["BAD_REQUEST"]
        again = await client.post("/graphql", json={"extensions": persisted(wrong)}, headers=auth)
        assert codes(again) == ["PERSISTED_QUERY_NOT_FOUND"]
        # Malformed persistedQuery extensions.
        for extensions in (
            {"persistedQuery": {"version": 2, "sha256Hash": sha}},
            {"persistedQuery": {"version": 1, "sha256Hash": "abc"}},
            {"persistedQuery": {"version": 1, "sha256Hash": sha.upper()}},
            {"persistedQuery": "yes"},
        ):
            bad = await client.post("/graphql", json={"extensions": extensions}, headers=auth)
            assert bad.status_code == 400 and codes(bad) == ["BAD_REQUEST"], extensions
        bad = await client.post("/graphql", json={"extensions": [1]}, headers=auth)
        assert bad.status_code == 400 and codes(bad) == ["BAD_REQUEST"]

    # The registration lives in Redis: another gateway instance knows the hash.
    redis = Redis.from_url(servers.redis_url)
    try:
        assert await redis.get(f"apq:{sha}") == text.encode()
        assert 0 < await redis.ttl(f"apq:{sha}") <= 7 * 86400
    finally:
        await redis.aclose()
    async with gateway(servers) as (_, other):
        shared = await other.post("/graphql", json={"extensions": persisted(sha)}, headers=auth)
        assert shared.status_code == 200 and shared.json() == registered.json()


async def test_an_invalid_document_is_never_registered(servers: Servers, token: Any) -> None:
    auth = bearer(token("acme"))
    text = f"query Bad{uuid.uuid4().hex} {{ viewer {{ nope }} }}"
    async with gateway(servers) as (_, client):
        invalid = await client.post(
            "/graphql", json={"query": text, "extensions": persisted(sha256(text))}, headers=auth
        )
        assert invalid.status_code == 200 and codes(invalid) == ["GRAPHQL_VALIDATION_FAILED"]
        later = await client.post(
            "/graphql", json={"extensions": persisted(sha256(text))}, headers=auth
        )
        assert codes(later) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_mobile_tokens_run_only_manifest_operations_by_id(
    servers: Servers, token: Any
) -> None:
    mobile = bearer(token("acme", "marketer", "mobile"))
    dashboard = bearer(token("acme"))
    home = MANIFEST["MobileHome"]
    async with gateway(servers) as (_, client):
        # By id, over POST and GET: runs.
        by_id = await client.post(
            "/graphql", json={"extensions": persisted(MOBILE_HOME_ID)}, headers=mobile
        )
        assert by_id.status_code == 200, by_id.text
        assert by_id.json()["data"]["mobileHome"]["pendingApprovalCount"] >= 0
        params = {"extensions": orjson.dumps(persisted(MOBILE_HOME_ID)).decode()}
        by_get = await client.get("/graphql", params=params, headers=mobile)
        assert by_get.status_code == 200 and by_get.json() == by_id.json()
        # Query text, even the manifest's own text with its id, or an unknown id: refused.
        apq_text = f"query Dash{uuid.uuid4().hex} {{ viewer {{ id }} }}"
        registered = await client.post(
            "/graphql",
            json={"query": apq_text, "extensions": persisted(sha256(apq_text))},
            headers=dashboard,
        )
        assert registered.status_code == 200
        for payload in (
            {"query": "{ viewer { id } }"},
            {"query": home["body"]},
            {"query": home["body"], "extensions": persisted(MOBILE_HOME_ID)},
            {"extensions": persisted(sha256("{ viewer { id } }"))},
            {"extensions": persisted(sha256(apq_text))},  # APQ-registered, not in a manifest
        ):
            refused = await client.post("/graphql", json=payload, headers=mobile)
            assert refused.status_code == 400, (payload, refused.text)
            assert codes(refused) == ["PERSISTED_QUERY_REQUIRED"]
        refused = await client.get(
            "/graphql", params={"query": "{ viewer { id } }"}, headers=mobile
        )
        assert refused.status_code == 400 and codes(refused) == ["PERSISTED_QUERY_REQUIRED"]
        # A manifest mutation goes by POST only.
        mutation_id = MANIFEST["MobileResolveApproval"]["id"]
        params = {"extensions": orjson.dumps(persisted(mutation_id)).decode()}
        by_get = await client.get("/graphql", params=params, headers=mobile)
        assert by_get.status_code == 405 and codes(by_get) == ["METHOD_NOT_ALLOWED"]
        # Other audiences may run manifest operations by id too.
        dash = await client.post(
            "/graphql", json={"extensions": persisted(MOBILE_HOME_ID)}, headers=dashboard
        )
        assert dash.status_code == 200 and dash.json()["data"]["mobileHome"]


async def test_persisted_operations_are_never_parsed_or_validated_while_serving(
    servers: Servers, token: Any
) -> None:
    mobile = bearer(token("acme", "viewer", "mobile"))
    dashboard = bearer(token("acme", "viewer"))
    async with gateway(servers) as (app, client):
        documents = app.state.graphql.documents
        # The manifests' documents were prepared when the app was built.
        assert documents.parsed == documents.validated == len(MANIFEST)
        params = {"extensions": orjson.dumps(persisted(MOBILE_HOME_ID)).decode()}
        for _ in range(10):
            post = await client.post(
                "/graphql", json={"extensions": persisted(MOBILE_HOME_ID)}, headers=mobile
            )
            get = await client.get("/graphql", params=params, headers=mobile)
            for response in (post, get):
                assert response.status_code == 200
                assert float(server_timing(response)["parse"]) == 0.0
        assert documents.parsed == documents.validated == len(MANIFEST)
        # An APQ document: parsed and validated once, when it is registered.
        text = f"query Once{uuid.uuid4().hex} {{ viewer {{ id }} }}"
        first = await client.post(
            "/graphql",
            json={"query": text, "extensions": persisted(sha256(text))},
            headers=dashboard,
        )
        assert first.status_code == 200 and float(server_timing(first)["parse"]) > 0
        for _ in range(10):
            again = await client.post(
                "/graphql", json={"extensions": persisted(sha256(text))}, headers=dashboard
            )
            assert again.status_code == 200
            assert float(server_timing(again)["parse"]) == 0.0
        assert documents.parsed == documents.validated == len(MANIFEST) + 1


async def test_extra_manifests_are_loaded_at_start(
    servers: Servers, token: Any, tmp_path: Path
) -> None:
    body = "query EdgeExtra { viewer { id role } }"
    manifest = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": sha256(body), "name": "EdgeExtra", "type": "query", "body": body}],
    }
    path = tmp_path / "extra-manifest.json"
    path.write_bytes(orjson.dumps(manifest))
    mobile = bearer(token("acme", "viewer", "mobile"))
    async with gateway(servers, pq_manifests=(DEFAULT_MANIFEST, path)) as (_, client):
        extra = await client.post(
            "/graphql", json={"extensions": persisted(sha256(body))}, headers=mobile
        )
        assert extra.status_code == 200 and extra.json()["data"]["viewer"]["role"] == "VIEWER"
        home = await client.post(
            "/graphql", json={"extensions": persisted(MOBILE_HOME_ID)}, headers=mobile
        )
        assert home.status_code == 200

    settings = Settings(database_url=servers.database_url, redis_url=servers.redis_url)
    # A configured manifest that is missing, or whose id is not its body's hash, stops start.
    with pytest.raises(ManifestError, match=r"none\.json"):
        create_app(Settings(**{**settings.__dict__, "pq_manifests": (tmp_path / "none.json",)}))
    manifest["operations"][0]["id"] = sha256("something else")
    path.write_bytes(orjson.dumps(manifest))
    with pytest.raises(ManifestError, match="sha256"):
        create_app(Settings(**{**settings.__dict__, "pq_manifests": (path,)}))


@pytest.mark.parametrize("content", [None, b"{not json", b'{"format": "other", "version": 1}'])
def test_serve_refuses_to_start_without_a_usable_manifest(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "mobile-manifest.json"
    if content is not None:
        path.write_bytes(content)
    environment = os.environ | {
        "SWITCHBOARD_PQ_MANIFESTS": str(path),
        "SWITCHBOARD_STATE_DIR": str(tmp_path / "state"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "serve", "--port", "0"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert str(path) in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()  # refused before any server started
