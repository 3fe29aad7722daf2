"""Property-based fuzzing with schemathesis in GraphQL mode.

Schemathesis generates queries and mutations from the gateway's own schema (every root
field, with arguments of every kind, including malformed custom scalars); each is sent
with a valid token of a role (owner, admin, marketer, viewer, or an agent), over POST or
GET, to a production-mode gateway with the response cache on. No answer may be a 5xx,
carry INTERNAL_SERVER_ERROR, or show anything of the internals.

The examples are derandomised so that the suite is repeatable; SWITCHBOARD_FUZZ_EXAMPLES
raises their number and SWITCHBOARD_FUZZ_RANDOM=1 draws new ones. Mutations write only to
a tenant seeded for this module.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from sqlalchemy.ext.asyncio import create_async_engine

from domain.ids import to_global_id
from schema.schema import schema as gateway_schema
from switchboard.devdata.seed import seed_demo, stable_id
from switchboard.edge.auth import issue_token
from switchboard.settings import Settings
from tests.conftest import Servers, tenant_gid, user_gid
from tests.support.edge import PRODUCTION_SECRET, bearer, gateway

SLUG = "wonka"
ROLES = ("owner", "admin", "marketer", "viewer", "agent")
EXAMPLES = int(os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "150"))
LEAKS = ("Traceback", 'File "', "asyncpg", "sqlalchemy", "psycopg", "Errno", "Internal server")

# The contract's custom scalars: well-formed values and arbitrary text.
_text = st.text(max_size=40)
schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()), _text).map(
        nodes.String
    ),
)
schemathesis.graphql.scalar(
    "Date", st.one_of(st.dates().map(lambda d: d.isoformat()), _text).map(nodes.String)
)
schemathesis.graphql.scalar(
    "Decimal",
    st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, places=6).map(str),
        st.sampled_from(["NaN", "Infinity", "-0", "1e400", "12.5"]),
        _text,
    ).map(nodes.String),
)
schemathesis.graphql.scalar(
    "JSON",
    st.one_of(
        _text.map(nodes.String), st.integers().map(nodes.Int), st.booleans().map(nodes.Boolean)
    ),
)
CASES = schemathesis.graphql.from_file(gateway_schema.as_str()).as_strategy()


@pytest.fixture(scope="module")
async def fuzz_client(servers: Servers) -> AsyncIterator[httpx.AsyncClient]:
    engine = create_async_engine(servers.database_url)
    async with engine.begin() as conn:
        await seed_demo(conn, {SLUG: ("Wonka Industries", Decimal("800.00"))})
    await engine.dispose()
    async with gateway(servers, mode="production", response_cache=True, rate_limit=False) as (
        _,
        client,
    ):
        yield client


@pytest.fixture(scope="module")
def fuzz_tokens() -> dict[str, str]:
    signer = Settings(jwt_secret=PRODUCTION_SECRET)
    tokens = {
        role: issue_token(signer, user_gid(SLUG, role), tenant_gid(SLUG), "dashboard")
        for role in ROLES[:-1]
    }
    agent = to_global_id("Agent", stable_id(SLUG, "agent", "COPYWRITER"))
    tokens["agent"] = issue_token(signer, agent, tenant_gid(SLUG), "agent")
    return tokens


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("SWITCHBOARD_FUZZ_RANDOM") != "1",
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(case=CASES, role=st.sampled_from(ROLES), method=st.sampled_from(["POST", "GET"]))
async def test_generated_operations_never_fail_inside(
    fuzz_client: httpx.AsyncClient, fuzz_tokens: dict[str, str], case: Any, role: str, method: str
) -> None:
    headers = bearer(fuzz_tokens[role])
    if method == "GET":
        response = await fuzz_client.get("/graphql", params={"query": case.body}, headers=headers)
    else:
        response = await fuzz_client.post("/graphql", json={"query": case.body}, headers=headers)
    context = f"{role} {method} {case.body!r} → {response.status_code} {response.text[:500]}"
    assert response.status_code < 500, context
    body = response.json()
    codes = {error.get("extensions", {}).get("code") for error in body.get("errors", [])}
    assert "INTERNAL_SERVER_ERROR" not in codes, context
    assert None not in codes, context  # every error carries its code
    for leak in LEAKS:
        assert leak not in response.text, context
