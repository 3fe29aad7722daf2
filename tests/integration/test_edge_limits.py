"""Operation limits, introspection, error masking, batching and size limits."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from graphql import OperationType

from schema.core import core_schema
from schema.schema import schema
from switchboard.edge.documents import DocumentCache
from switchboard.edge.limits import OperationLimits
from tests.conftest import Servers
from tests.support.edge import bearer, gateway, production_token, server_timing

OPERATIONS = Path(__file__).resolve().parents[2] / "contract" / "operations"
DEEP = "{ tenant { campaigns { edges { node { deliverables { edges { node { id } } } } } } } }"


def _too_complex(response: httpx.Response) -> str:
    """The message of a QUERY_TOO_COMPLEX answer given before anything executed."""
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", response.text
    assert "data" not in response.json()
    assert "exec" not in server_timing(response)  # refused before any resolver ran
    return str(error["message"])


def test_every_contract_operation_is_within_the_default_limits() -> None:
    limits = OperationLimits()
    documents = DocumentCache(core_schema(schema), limits=limits)
    checked = 0
    for path in sorted(OPERATIONS.rglob("*.graphql")):
        prepared = documents.get(path.read_text())
        assert not prepared.parse_errors and not prepared.too_complex, path
        for operation, analysis in prepared.analyses:
            if operation.operation is OperationType.SUBSCRIPTION:
                continue
            # Also with every `first` variable at its largest.
            largest = {name: 100 for name, _ in analysis.defaults}
            for variables in (None, largest):
                assert analysis.violation(variables, limits) is None, (path.name, analysis)
            checked += 1
    assert checked >= 18


async def test_depth(servers: Servers, token: Any) -> None:
    auth = bearer(token("acme"))
    async with gateway(servers, max_depth=5) as (_, client):
        message = _too_complex(await client.post("/graphql", json={"query": DEEP}, headers=auth))
        assert "deeper than 5" in message
        # Fragments add no depth of their own, but their fields count where they are spread.
        fragments = """query { tenant { ...C } }
          fragment C on Tenant { campaigns { edges { node { ...D } } } }
          fragment D on Campaign { deliverables { edges { node { id } } } }"""
        _too_complex(await client.post("/graphql", json={"query": fragments}, headers=auth))
        shallow = "{ tenant { campaigns { edges { node { id } } } } }"
        ok = await client.post("/graphql", json={"query": shallow}, headers=auth)
        assert ok.status_code == 200 and "errors" not in ok.json()
    # The default limit: 12.
    async with gateway(servers) as (_, client):
        _too_complex(await client.post("/graphql", json={"query": _deep(13)}, headers=auth))
        ok = await client.post("/graphql", json={"query": _deep(12)}, headers=auth)
        assert ok.status_code == 200 and "errors" not in ok.json(), ok.text


def _deep(depth: int) -> str:
    """tenant → campaigns → edges → node → tenant → …: a valid query 12 or 13 fields deep."""
    hop = "tenant { campaigns(first: 1) { edges { node { %s } } } }"
    leaf = {
        12: "tenant { campaigns(first: 1) { edges { cursor } } }",
        13: "tenant { campaigns(first: 1) { edges { node { id } } } }",
    }
    text = hop % (hop % leaf[depth])
    return "{ " + text + " }"


async def test_aliases(servers: Servers, token: Any) -> None:
    auth = bearer(token("acme"))
    async with gateway(servers, max_aliases=3) as (_, client):
        four = "{ a: viewer { id } b: viewer { id } c: viewer { id } d: viewer { id } }"
        assert "4 aliases" in _too_complex(
            await client.post("/graphql", json={"query": four}, headers=auth)
        )
        # Aliases in a fragment count each time it is spread.
        spread = """{ viewer { ...V } tenant { viewer: id } me: viewer { ...V } }
          fragment V on Viewer { x: id y: email }"""
        _too_complex(await client.post("/graphql", json={"query": spread}, headers=auth))
        three = "{ a: viewer { id } b: viewer { id } c: viewer { id } }"
        ok = await client.post("/graphql", json={"query": three}, headers=auth)
        assert ok.status_code == 200 and "errors" not in ok.json()


async def test_tokens(servers: Servers, token: Any) -> None:
    auth = bearer(token("acme"))
    async with gateway(servers, max_tokens=40) as (_, client):
        long = "{ " + " ".join(f"f{i}: viewer {{ id }}" for i in range(20)) + " }"
        assert "40 tokens" in _too_complex(
            await client.post("/graphql", json={"query": long}, headers=auth)
        )
        ok = await client.post("/graphql", json={"query": "{ viewer { id } }"}, headers=auth)
        assert ok.status_code == 200


async def test_cost_multiplies_lists_by_first(servers: Servers, token: Any) -> None:
    auth = bearer(token("acme"))
    nested = """query($outer: Int, $inner: Int) { tenant { campaigns(first: $outer) { edges {
      node { id deliverables(first: $inner) { edges { node { id title } } } } } } } }"""
    literal = nested.replace("query($outer: Int, $inner: Int)", "query")
    literal = literal.replace("$outer", "100").replace("$inner", "100")
    async with gateway(servers, max_cost=1000) as (app, client):
        message = _too_complex(await client.post("/graphql", json={"query": literal}, headers=auth))
        assert "estimated cost" in message
        # One document, its cost depending on the variables of each request.
        small = await client.post(
            "/graphql", json={"query": nested, "variables": {"outer": 5, "inner": 5}}, headers=auth
        )
        assert small.status_code == 200 and "errors" not in small.json(), small.text
        large = {"query": nested, "variables": {"outer": 50, "inner": 20}}
        _too_complex(await client.post("/graphql", json=large, headers=auth))
        # Unset variables take the argument's default (20 × 20 here: over 1000).
        _too_complex(await client.post("/graphql", json={"query": nested}, headers=auth))
        parsed = app.state.graphql.documents.parsed
        again = await client.post(
            "/graphql", json={"query": nested, "variables": {"outer": 2, "inner": 2}}, headers=auth
        )
        assert again.status_code == 200
        assert app.state.graphql.documents.parsed == parsed  # the analysis came with the document


async def test_the_default_cost_refuses_three_nested_pages(
    client: httpx.AsyncClient, token: Any
) -> None:
    three = """{ tenant { campaigns(first: 100) { edges { node { deliverables(first: 100) {
      edges { node { activities(first: 100) { edges { node { id } } } } } } } } } } }"""
    response = await client.post("/graphql", json={"query": three}, headers=bearer(token("acme")))
    assert "estimated cost" in _too_complex(response)


async def test_a_fragment_bomb_is_refused_quickly(servers: Servers, token: Any) -> None:
    """Each fragment spreads the next twice: 2^30 copies, analysed in linear time."""
    auth = bearer(token("acme"))
    levels = 30
    hop = "campaigns(first: 1) {{ edges {{ node {{ tenant {{ ...L{next} }} }} }} }}"
    lines = ["query { tenant { ...L0 } }"]
    for i in range(levels):
        inner = hop.format(next=i + 1)
        lines.append(f"fragment L{i} on Tenant {{ a{i}: {inner} b{i}: {inner} }}")
    lines.append(f"fragment L{levels} on Tenant {{ id }}")
    bomb = "\n".join(lines)
    async with gateway(servers, max_depth=1000, max_aliases=10**12) as (_, client):
        started = time.perf_counter()
        response = await client.post("/graphql", json={"query": bomb}, headers=auth)
        elapsed = time.perf_counter() - started
    assert "estimated cost" in _too_complex(response)
    assert elapsed < 2.0


async def test_introspection_is_off_in_production(servers: Servers, token: Any) -> None:
    auth = bearer(production_token("acme"))
    schema_query = "{ __schema { types { name } } }"
    type_query = '{ __type(name: "Tenant") { fields { name } } }'
    async with gateway(servers, mode="production") as (_, production):
        for query in (schema_query, type_query):
            response = await production.post("/graphql", json={"query": query}, headers=auth)
            assert response.status_code == 200, response.text  # application/json
            codes = {e["extensions"]["code"] for e in response.json()["errors"]}
            assert codes == {"GRAPHQL_VALIDATION_FAILED"}
        typename = await production.post("/graphql", json={"query": "{ __typename }"}, headers=auth)
        assert typename.json() == {"data": {"__typename": "Query"}}
        # Nor do errors suggest the schema's names.
        typo = await production.post("/graphql", json={"query": "{ tenan { id } }"}, headers=auth)
        assert typo.status_code == 200 and "Did you mean" not in typo.text
    async with gateway(servers) as (_, development):
        response = await development.post(
            "/graphql", json={"query": schema_query}, headers=bearer(token("acme"))
        )
        assert response.status_code == 200 and response.json()["data"]["__schema"]["types"]


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("mode", ["production", "test"])
async def test_unreachable_servers_while_authenticating_answer_503_and_nothing_internal(
    servers: Servers, token: Any, mode: str
) -> None:
    """The database and Redis unreachable while authenticating: an outage, not a bug, so
    503 SERVICE_UNAVAILABLE with Retry-After, and nothing of the internals."""
    dead_db = f"postgresql+asyncpg://postgres@127.0.0.1:{_dead_port()}/none"
    dead_redis = f"redis://127.0.0.1:{_dead_port()}/0"
    async with gateway(
        servers, database_url=dead_db, redis_url=dead_redis, mode=mode, db_connect_timeout_s=1
    ) as (_, client):
        tok = production_token("acme") if mode == "production" else token("acme")
        response = await client.post(
            "/graphql", json={"query": "{ viewer { id } }"}, headers=bearer(tok)
        )
    assert response.status_code == 503 and response.headers["retry-after"].isdigit()
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
    for internal in ("refused", "asyncpg", "sqlalchemy", "Traceback", "Errno"):
        assert internal.lower() not in response.text.lower(), response.text


async def test_batches_are_refused(client: httpx.AsyncClient, token: Any) -> None:
    auth = bearer(token("acme"))
    batch = [{"query": "{ viewer { id } }"}] * 2
    response = await client.post("/graphql", json=batch, headers=auth)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST" and "Batched" in error["message"]


async def test_body_and_variables_size_limits(servers: Servers, token: Any) -> None:
    auth = bearer(token("acme"))
    query = "query($q: String!) { skillSearch(query: $q) { score } }"
    async with gateway(servers, max_body_bytes=2000, max_variables_bytes=300) as (_, client):
        body = orjson.dumps({"query": "{ viewer { id } }" + " " * 2000})
        big = await client.post(
            "/graphql", content=body, headers=auth | {"content-type": "application/json"}
        )
        assert big.status_code == 413 and big.json()["errors"][0]["extensions"]["code"] == (
            "BAD_REQUEST"
        )
        variables = await client.post(
            "/graphql", json={"query": query, "variables": {"q": "x" * 400}}, headers=auth
        )
        assert variables.status_code == 413 and "variables" in variables.text
        fits = await client.post(
            "/graphql", json={"query": query, "variables": {"q": "brand voice"}}, headers=auth
        )
        assert fits.status_code == 200, fits.text
        long_get = await client.get(
            "/graphql", params={"query": "{ viewer { id } }" + " " * 2100}, headers=auth
        )
        assert long_get.status_code == 413
