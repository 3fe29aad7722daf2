"""Bad requests and bad arguments: each answers the contract's code and HTTP status.

Nothing here may answer 500 or show a stack trace; the one deliberate internal error (a
statement that PostgreSQL cancels while a table is locked) checks that production mode
says nothing of the internals.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from switchboard.app import create_app
from switchboard.settings import Settings
from tests.conftest import agent_gid, tenant_gid
from tests.support.edge import PRODUCTION_SECRET, production_token

QUEUE = """query($first: Int, $after: String) {
  approvalQueue(first: $first, after: $after) { edges { node { id } } } }"""
CAMPAIGNS = """query($first: Int, $after: String) {
  tenant { campaigns(first: $first, after: $after) { edges { node { id } } } } }"""
AGENT_ACTIVITIES = """query($id: ID!, $first: Int, $after: String) { node(id: $id) {
  ... on Agent { activities(first: $first, after: $after) { edges { node { id } } } } } }"""
SPEND = """query($from: DateTime!, $to: DateTime!) {
  tenant { spend(from: $from, to: $to) { totalUsd callCount } } }"""
GRAPHQL_RESPONSE = "application/graphql-response+json"
# A request that fails before execution (parse, validation, variables that do not coerce)
# answers by the media type the client accepts; `*/*` or no Accept is application/json.
PRE_EXECUTION_STATUS = {GRAPHQL_RESPONSE: 400, "application/json": 200}


@pytest.fixture(scope="module")
def auth(token: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {token('acme')}"}


def _assert_clean(response: httpx.Response) -> None:
    assert response.status_code != 500, response.text
    for leak in ("Traceback", 'File "', "Exception", "asyncpg", "sqlalchemy"):
        assert leak not in response.text, response.text


def _error_codes(response: httpx.Response, status: int) -> list[str]:
    """The codes of a response that must have HTTP `status` and carry only errors' codes."""
    assert response.status_code == status, response.text
    _assert_clean(response)
    body = response.json()
    assert body["errors"], body
    for error in body["errors"]:
        assert isinstance(error["message"], str) and error["message"]
    return [error["extensions"]["code"] for error in body["errors"]]


def _only(response: httpx.Response, status: int, code: str) -> None:
    codes = _error_codes(response, status)
    assert codes and set(codes) == {code}, (codes, response.text)


async def _raw(
    client: httpx.AsyncClient,
    content: bytes | str,
    headers: dict[str, str],
    content_type: str | None = "application/json",
) -> httpx.Response:
    sent = dict(headers)
    if content_type is not None:
        sent["content-type"] = content_type
    return await client.post("/graphql", content=content, headers=sent)


async def _json(client: httpx.AsyncClient, payload: Any, headers: dict[str, str]) -> httpx.Response:
    return await _raw(client, orjson.dumps(payload), headers)


# The HTTP request


@pytest.mark.parametrize(
    "body",
    [b'{"query": "{ viewer { id } }"', b"{query: 1}", b"", b"\xff\xfe{}", b"nul\x00l"],
    ids=["truncated", "not json", "empty", "not utf-8", "nul byte"],
)
async def test_malformed_json_is_a_bad_request(
    client: httpx.AsyncClient, auth: dict[str, str], body: bytes
) -> None:
    _only(await _raw(client, body, auth), 400, "BAD_REQUEST")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_other_content_types_are_unsupported(
    client: httpx.AsyncClient, auth: dict[str, str], content_type: str | None
) -> None:
    body = orjson.dumps({"query": "{ viewer { id } }"})
    response = await _raw(client, body, auth, content_type)
    _only(response, 415, "BAD_REQUEST")


async def test_json_with_a_charset_is_fine(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = orjson.dumps({"query": "{ viewer { id } }"})
    response = await _raw(client, body, auth, "application/json; charset=utf-8")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["viewer"]["id"]


@pytest.mark.parametrize(
    "payload",
    [
        [{"query": "{ viewer { id } }"}, {"query": "{ viewer { id } }"}],
        [],
        "{ viewer { id } }",
        42,
        None,
        {},
        {"variables": {}},
        {"query": None},
        {"query": 42},
        {"query": ["{ viewer { id } }"]},
        {"query": {"text": "{ viewer { id } }"}},
        {"query": ""},
        {"query": "   "},
        {"query": "{ viewer { id } }", "variables": []},
        {"query": "{ viewer { id } }", "variables": "{}"},
        {"query": "{ viewer { id } }", "variables": 1},
        {"query": "{ viewer { id } }", "operationName": 1},
    ],
    ids=[
        "batch",
        "empty batch",
        "string body",
        "number body",
        "null body",
        "no query",
        "only variables",
        "null query",
        "number query",
        "list query",
        "object query",
        "empty query",
        "blank query",
        "list variables",
        "string variables",
        "number variables",
        "number operationName",
    ],
)
async def test_request_shape_errors_are_bad_requests(
    client: httpx.AsyncClient, auth: dict[str, str], payload: Any
) -> None:
    _only(await _json(client, payload, auth), 400, "BAD_REQUEST")


async def test_null_variables_are_no_variables(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await _json(client, {"query": "{ viewer { id } }", "variables": None}, auth)
    assert response.status_code == 200 and "errors" not in response.json()


async def test_body_over_one_megabyte_is_too_large(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    padding = " " * 1_000_001
    body = orjson.dumps({"query": "{ viewer { id } }" + padding})
    _only(await _raw(client, body, auth), 413, "BAD_REQUEST")

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted as it arrives
        yield b'{"query": "{ viewer { id } }'
        for _ in range(11):
            yield b" " * 100_000
        yield b'"}'

    streamed = await client.post(
        "/graphql", content=chunks(), headers=auth | {"content-type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    _only(streamed, 413, "BAD_REQUEST")
    # Just under the limit is a request like any other.
    body = orjson.dumps({"query": "{ viewer { id } }" + " " * 999_000})
    assert len(body) < 1_000_000
    assert (await _raw(client, body, auth)).status_code == 200


async def test_get_runs_queries(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    params = {
        "query": AGENT_ACTIVITIES,
        "variables": orjson.dumps({"id": agent_gid("acme", "COPYWRITER"), "first": 2}).decode(),
    }
    response = await client.get("/graphql", params=params, headers=auth)
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["node"]["activities"]["edges"]) == 2
    plain = await client.get(
        "/graphql", params={"query": "{ tenant { id } }"}, headers=auth | {"accept": "*/*"}
    )
    assert plain.json() == {"data": {"tenant": {"id": tenant_gid("acme")}}}


async def test_get_errors(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    _only(await client.get("/graphql", headers=auth), 400, "BAD_REQUEST")
    bad_variables = {"query": "{ viewer { id } }", "variables": "{not json"}
    _only(await client.get("/graphql", params=bad_variables, headers=auth), 400, "BAD_REQUEST")
    list_variables = {"query": "{ viewer { id } }", "variables": "[1]"}
    _only(await client.get("/graphql", params=list_variables, headers=auth), 400, "BAD_REQUEST")
    mutation = {"query": 'mutation { setPreference(key: "k", value: 1) { userErrors { code } } }'}
    response = await client.get("/graphql", params=mutation, headers=auth)
    if response.status_code == 405:
        _only(response, 405, "METHOD_NOT_ALLOWED")
        assert "POST" in response.headers["allow"]
    else:  # while the schema has no mutations
        _only(response, 200, "GRAPHQL_VALIDATION_FAILED")
    unparsable = {"query": "{ viewer {"}
    _only(
        await client.get("/graphql", params=unparsable, headers=auth), 200, "GRAPHQL_PARSE_FAILED"
    )
    _only(
        await client.get(
            "/graphql", params=unparsable, headers=auth | {"accept": GRAPHQL_RESPONSE}
        ),
        400,
        "GRAPHQL_PARSE_FAILED",
    )


async def test_graphql_response_media_type_when_accepted(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    media = "application/graphql-response+json"
    for accept in (media, f"{media}, application/json;q=0.9"):
        ok = await client.post(
            "/graphql", json={"query": "{ viewer { id } }"}, headers=auth | {"accept": accept}
        )
        assert ok.status_code == 200
        assert ok.headers["content-type"].split(";")[0] == media
        assert ok.json()["data"]["viewer"]["id"]
        # Errors too, whatever their status.
        for response in (
            await client.post(
                "/graphql", json={"query": "{ viewer {"}, headers=auth | {"accept": accept}
            ),
            await client.post(
                "/graphql", json={"query": "{ viewer { id } }"}, headers={"accept": accept}
            ),
        ):
            assert response.status_code in (400, 401)
            assert response.headers["content-type"].split(";")[0] == media
    plain = await client.post(
        "/graphql",
        json={"query": "{ viewer { id } }"},
        headers=auth | {"accept": "application/json"},
    )
    assert plain.headers["content-type"].split(";")[0] == "application/json"


# The document


@pytest.mark.parametrize("accept", list(PRE_EXECUTION_STATUS))
@pytest.mark.parametrize(
    "query",
    ["{ viewer {", "query {", "{ viewer { id } } }", "mutation", '{ node(id: "x) { id } }', "}"],
)
async def test_documents_that_do_not_parse(
    client: httpx.AsyncClient, auth: dict[str, str], query: str, accept: str
) -> None:
    response = await _json(client, {"query": query}, auth | {"accept": accept})
    _only(response, PRE_EXECUTION_STATUS[accept], "GRAPHQL_PARSE_FAILED")
    assert "data" not in response.json()
    assert response.headers["content-type"].split(";")[0] == accept


@pytest.mark.parametrize(
    "query",
    [
        "{ viewer { nope } }",
        "{ nope }",
        "{ viewer }",
        "{ approvalQueue(last: 5) { edges { cursor } } }",
        '{ approvalQueue(first: "ten") { edges { cursor } } }',
        "{ approvalQueue(first: 99999999999) { edges { cursor } } }",
        "{ node { id } }",
        "query($x: Int) { viewer { id } }",
        "query Q { viewer { id } } query Q { tenant { id } }",
        "subscription { nope }",
        "{ ...Missing }",
        "query($id: ID!) { viewer { id } }",  # an unused variable
    ],
)
@pytest.mark.parametrize("accept", list(PRE_EXECUTION_STATUS))
async def test_documents_not_valid_for_the_schema(
    client: httpx.AsyncClient, auth: dict[str, str], query: str, accept: str
) -> None:
    response = await _json(client, {"query": query}, auth | {"accept": accept})
    _only(response, PRE_EXECUTION_STATUS[accept], "GRAPHQL_VALIDATION_FAILED")
    assert "data" not in response.json()
    assert response.headers["content-type"].split(";")[0] == accept


async def test_operation_name_must_pick_one_operation(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    two = "query A { viewer { id } } query B { tenant { id } }"
    for accept, status in PRE_EXECUTION_STATUS.items():
        headers = auth | {"accept": accept}
        _only(await _json(client, {"query": two}, headers), status, "GRAPHQL_VALIDATION_FAILED")
        _only(
            await _json(client, {"query": two, "operationName": "C"}, headers),
            status,
            "GRAPHQL_VALIDATION_FAILED",
        )
    picked = await _json(client, {"query": two, "operationName": "B"}, auth)
    assert picked.json() == {"data": {"tenant": {"id": tenant_gid("acme")}}}


# Arguments


def _user_input(response: httpx.Response) -> None:
    _only(response, 200, "BAD_USER_INPUT")


async def _gql_vars(
    client: httpx.AsyncClient, auth: dict[str, str], query: str, variables: dict[str, Any]
) -> httpx.Response:
    return await _json(client, {"query": query, "variables": variables}, auth)


@pytest.mark.parametrize("first", [101, -1, 1000, -100])
async def test_first_out_of_range(
    client: httpx.AsyncClient, auth: dict[str, str], first: int
) -> None:
    agent = agent_gid("acme", "COPYWRITER")
    for query, variables in (
        (QUEUE, {"first": first}),
        (CAMPAIGNS, {"first": first}),
        (AGENT_ACTIVITIES, {"id": agent, "first": first}),
    ):
        response = await _gql_vars(client, auth, query, variables)
        _user_input(response)
        assert response.json().get("data") in (None, {"node": None}), response.text
    literal = f"{{ tenant {{ campaigns(first: {first}) {{ edges {{ cursor }} }} }} }}"
    _user_input(await _json(client, {"query": literal}, auth))


@pytest.mark.parametrize("first", [0, 1, 100])
async def test_first_in_range(client: httpx.AsyncClient, auth: dict[str, str], first: int) -> None:
    for query in (QUEUE, CAMPAIGNS):
        response = await _gql_vars(client, auth, query, {"first": first})
        assert response.status_code == 200 and "errors" not in response.json(), response.text


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


MALFORMED_CURSORS = {
    "zzz": "zzz",
    "empty": "",
    "base64 junk": _b64(b"\x00\x01junk\xff"),
    "base64 text": _b64(b"hello, world"),
    "json object": _b64(b'{"a": 1, "b": 2}'),
    "json null": _b64(b"null"),
    "one item": _b64(b'["2026-01-01T00:00:00+00:00"]'),
    "three items": _b64(orjson.dumps(["2026-01-01T00:00:00+00:00", uuid.uuid4().hex, 1])),
    "numbers": _b64(b"[1, 2]"),
    "naive time": _b64(orjson.dumps(["2026-01-01T00:00:00", uuid.uuid4().hex])),
    "not a time": _b64(orjson.dumps(["yesterday", uuid.uuid4().hex])),
    "not a uuid": _b64(orjson.dumps(["2026-01-01T00:00:00+00:00", "xyz"])),
    "non-ascii": "é" * 12,
    "huge": "A" * 100_000,
}


@pytest.mark.parametrize("cursor", list(MALFORMED_CURSORS))
async def test_malformed_cursor(
    client: httpx.AsyncClient, auth: dict[str, str], cursor: str
) -> None:
    after = MALFORMED_CURSORS[cursor]
    for query, variables in (
        (QUEUE, {"after": after}),
        (CAMPAIGNS, {"after": after}),
        (AGENT_ACTIVITIES, {"id": agent_gid("acme", "COPYWRITER"), "after": after}),
    ):
        _user_input(await _gql_vars(client, auth, query, variables))


async def test_a_real_cursor_pages_on(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    query = """query($after: String) {
      tenant { campaigns(first: 2, after: $after) { edges { cursor node { id } } } } }"""
    first = (await _gql_vars(client, auth, query, {})).json()["data"]["tenant"]["campaigns"]
    cursor = first["edges"][-1]["cursor"]
    second = (await _gql_vars(client, auth, query, {"after": cursor})).json()["data"]
    ids = [edge["node"]["id"] for edge in second["tenant"]["campaigns"]["edges"]]
    assert ids and not set(ids) & {edge["node"]["id"] for edge in first["edges"]}


NODE = "query($id: ID!) { node(id: $id) { id } }"


@pytest.mark.parametrize(
    "node_id",
    [
        "nope",
        "cmp_123",
        "",
        "cmp_",
        "cmp_" + "z" * 32,
        "cmp_" + "0" * 31,
        "cmp_" + "0" * 33,
        "xyz_" + "0" * 32,
        str(uuid.uuid4()),
        "cmp_" + str(uuid.uuid4())[:32],
        "cmp_" + "0" * 30 + "\x00\x00",
    ],
)
async def test_malformed_node_id(
    client: httpx.AsyncClient, auth: dict[str, str], node_id: str
) -> None:
    response = await _gql_vars(client, auth, NODE, {"id": node_id})
    _user_input(response)


@pytest.mark.parametrize("kind", ["ten", "cmp", "dlv", "act", "apr", "agt", "llm", "skl", "usr"])
async def test_well_formed_unknown_id_is_null(
    client: httpx.AsyncClient, auth: dict[str, str], kind: str
) -> None:
    response = await _gql_vars(client, auth, NODE, {"id": f"{kind}_{uuid.uuid4().hex}"})
    assert response.status_code == 200
    assert response.json() == {"data": {"node": None}}


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (QUEUE, {"first": "abc"}),
        (QUEUE, {"first": 1.5}),
        (QUEUE, {"first": 2**31}),
        (QUEUE, {"first": True}),
        (QUEUE, {"after": 42}),
        (QUEUE, {"after": ["x"]}),
        (NODE, {}),
        (NODE, {"id": None}),
        (NODE, {"id": {"id": "x"}}),
        (
            "query($r: RiskLevel) { approvalQueue(riskLevel: $r) { edges { cursor } } }",
            {"r": "SEVERE"},
        ),
        (SPEND, {"from": 20260101, "to": "2026-02-01T00:00:00Z"}),
    ],
)
@pytest.mark.parametrize("accept", list(PRE_EXECUTION_STATUS))
async def test_variables_of_the_wrong_type(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    query: str,
    variables: dict[str, Any],
    accept: str,
) -> None:
    """Variables that do not coerce: the operation never starts, so no `data` entry."""
    headers = auth | {"accept": accept}
    response = await _json(client, {"query": query, "variables": variables}, headers)
    _only(response, PRE_EXECUTION_STATUS[accept], "BAD_USER_INPUT")
    assert "data" not in response.json()
    assert response.headers["content-type"].split(";")[0] == accept


async def test_a_bad_argument_found_while_executing_is_200_whatever_the_media_type(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """`first` out of range is found by the resolver: the operation ran, `data` is there."""
    for accept in (*PRE_EXECUTION_STATUS, "*/*"):
        headers = auth | {"accept": accept}
        response = await _json(client, {"query": QUEUE, "variables": {"first": 101}}, headers)
        _user_input(response)
        assert "data" in response.json() and response.json()["data"] is None, response.text


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-01-01T00:00:00", "2026-02-01T00:00:00Z"),  # no offset
        ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00"),
        ("2026-01-01", "2026-02-01T00:00:00Z"),  # a date, not a date-time
        ("yesterday", "2026-02-01T00:00:00Z"),
        ("2026-13-01T00:00:00Z", "2026-02-01T00:00:00Z"),
        ("", "2026-02-01T00:00:00Z"),
        ("2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"),  # `to` before `from`
        ("2026-01-01T00:00:00-05:00", "2026-01-01T01:00:00+00:00"),  # before, in UTC
    ],
)
async def test_bad_spend_windows(
    client: httpx.AsyncClient, auth: dict[str, str], start: str, end: str
) -> None:
    _user_input(await _gql_vars(client, auth, SPEND, {"from": start, "to": end}))


async def test_good_spend_windows(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for start, end in (
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),  # empty, not an error
        ("2026-01-01T00:00:00+05:30", "2026-02-01T00:00:00-08:00"),
        ("0001-01-01T00:00:00Z", "9999-12-31T00:00:00Z"),
    ):
        response = await _gql_vars(client, auth, SPEND, {"from": start, "to": end})
        assert response.status_code == 200 and "errors" not in response.json(), response.text


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00+14:00", "2026-02-01T00:00:00Z"),  # before year 1 in UTC
        ("2026-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00"),  # after year 9999 in UTC
        ("2026-01-01T00:00:00Z", "9999-12-31T23:30:00Z"),
        ("9999-12-31T23:30:00Z", "9999-12-31T23:45:00Z"),  # its next hour is after 9999
        ("0001-01-01T00:00:00Z", "0001-01-01T00:30:00Z"),
    ],
)
async def test_extreme_spend_windows_are_answered_or_refused_never_internal_errors(
    client: httpx.AsyncClient, auth: dict[str, str], start: str, end: str
) -> None:
    response = await _gql_vars(client, auth, SPEND, {"from": start, "to": end})
    _assert_clean(response)
    assert response.status_code == 200, response.text
    codes = {error["extensions"]["code"] for error in response.json().get("errors", [])}
    assert codes <= {"BAD_USER_INPUT"}, response.text


async def test_literal_datetime_without_offset(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    query = """{ tenant {
      spend(from: "2026-01-01T00:00:00", to: "2026-02-01T00:00:00Z") { callCount } } }"""
    response = await _json(client, {"query": query}, auth)
    # In the document itself it makes the document invalid for the schema, or a bad argument.
    codes = _error_codes(response, 200)
    assert set(codes) in ({"GRAPHQL_VALIDATION_FAILED"}, {"BAD_USER_INPUT"}), response.text


# Production mode


@pytest.fixture
async def production(servers: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        mode="production",
        db_statement_timeout_ms=100,
        jwt_secret=PRODUCTION_SECRET,  # production accepts HS256 only with an operator's secret
    )
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield http


@pytest.fixture
def prod_auth() -> dict[str, str]:
    return {"authorization": f"Bearer {production_token('acme')}"}


async def test_production_hides_an_unexpected_error(
    production: httpx.AsyncClient, prod_auth: dict[str, str], db_conn: asyncpg.Connection
) -> None:
    """A read that PostgreSQL cancels (the table is locked past the statement timeout)."""
    assert (await _json(production, {"query": "{ viewer { id } }"}, prod_auth)).status_code == 200
    async with db_conn.transaction():
        await db_conn.execute("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
        response = await _json(production, {"query": "{ tenant { id name } }"}, prod_auth)
        both = f'{{ viewer {{ id }} node(id: "{tenant_gid("acme")}") {{ id }} }}'
        partial = await _json(production, {"query": both}, prod_auth)
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    text = response.text.lower()
    for internal in ("cancel", "timeout", "statement", "select", "tenants", "asyncpg", "trace"):
        assert internal not in text, response.text
    # With some data: 200, the data there is, and the same masked error.
    assert partial.status_code == 200, partial.text
    assert partial.json()["data"]["node"] is None
    assert partial.json()["data"]["viewer"]["id"].startswith("usr_")
    assert [e["extensions"]["code"] for e in partial.json()["errors"]] == ["INTERNAL_SERVER_ERROR"]
    assert partial.json()["errors"][0]["message"] == error["message"]
    # And afterwards the gateway answers as ever.
    after = await _json(production, {"query": "{ tenant { id } }"}, prod_auth)
    assert after.json() == {"data": {"tenant": {"id": tenant_gid("acme")}}}


async def test_production_still_says_what_is_wrong_with_a_request(
    production: httpx.AsyncClient, prod_auth: dict[str, str]
) -> None:
    _only(
        await _json(production, {"query": "{ viewer {"}, prod_auth),
        200,
        "GRAPHQL_PARSE_FAILED",
    )
    _only(
        await _json(production, {"query": "{ nope }"}, prod_auth | {"accept": GRAPHQL_RESPONSE}),
        400,
        "GRAPHQL_VALIDATION_FAILED",
    )
    response = await _gql_vars(production, prod_auth, QUEUE, {"first": 101})
    _user_input(response)
    assert "101" in response.json()["errors"][0]["message"]
    graphiql = await production.get("/graphql", headers={"accept": "text/html"})
    assert graphiql.status_code == 404 and "<html" not in graphiql.text.lower()


@pytest.mark.parametrize("accept", list(PRE_EXECUTION_STATUS))
async def test_nul_character_in_a_string_argument(
    client: httpx.AsyncClient, auth: dict[str, str], accept: str
) -> None:
    """Refused before execution, as a variable that does not coerce is."""
    query = "query($q: String!) { skillSearch(query: $q) { skill { id } } }"
    payload = {"query": query, "variables": {"q": "brand\x00voice"}}
    response = await _json(client, payload, auth | {"accept": accept})
    _only(response, PRE_EXECUTION_STATUS[accept], "BAD_USER_INPUT")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_other_methods_answer_405_in_the_contracts_format(
    client: httpx.AsyncClient, auth: dict[str, str], method: str
) -> None:
    response = await client.request(method, "/graphql", headers=auth)
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert "POST" in response.headers["allow"]
