"""Authentication as a client sees it: who a token makes you, and every way a token fails.

HS256 tokens come from the session's `token` fixtures; RS256 and ES256 tokens are signed
with keys made here and published by a small JWKS server on 127.0.0.1. The caches are
checked in the real Redis, and the membership cache against direct changes in PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from switchboard.devdata.seed import stable_id
from switchboard.edge.auth import Authenticator, issue_token
from switchboard.infra.membership_cache import forget_membership, membership_key
from switchboard.settings import Settings
from tests.conftest import agent_gid, tenant_gid, user_gid
from tests.support.edge import running

VIEWER_QUERY = "{ viewer { id email displayName role tenant { id slug } } }"


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _post(
    client: httpx.AsyncClient, headers: dict[str, str], query: str = VIEWER_QUERY
) -> httpx.Response:
    return await client.post("/graphql", json={"query": query}, headers=headers)


def _claims(
    slug: str = "acme", local: str = "marketer", ttl_s: int = 600, **overrides: Any
) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_gid(slug, local),
        "tid": tenant_gid(slug),
        "aud": "dashboard",
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _assert_no_internals(response: httpx.Response) -> None:
    text = response.text
    for leak in ("Traceback", 'File "', "jwt.", "PyJWT", "asyncpg", "sqlalchemy", "redis"):
        assert leak not in text, f"{leak!r} leaks in {text}"


def _unauthenticated_message(response: httpx.Response) -> str:
    """The message of a 401 UNAUTHENTICATED that says nothing but that."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"errors"}, body
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}, error
    assert set(error) == {"message", "extensions"}, error
    _assert_no_internals(response)
    return error["message"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# HS256


async def test_valid_token_shows_its_user_role_and_tenant(gql: Any, token: Any) -> None:
    response = await gql(VIEWER_QUERY, token=token("acme", "marketer"))
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "viewer": {
                "id": user_gid("acme", "marketer"),
                "email": "marketer@acme.example",
                "displayName": "Maya Marsh",
                "role": "MARKETER",
                "tenant": {"id": tenant_gid("acme"), "slug": "acme"},
            }
        }
    }
    other = await gql("{ viewer { id role tenant { slug } } }", token=token("globex", "admin"))
    assert other.json()["data"]["viewer"] == {
        "id": user_gid("globex", "admin"),
        "role": "ADMIN",
        "tenant": {"slug": "globex"},
    }


async def test_agent_token_shows_the_agent(gql: Any, agent_token: Any) -> None:
    response = await gql(
        "{ viewer { id role tenant { id } } }", token=agent_token("acme", "COPYWRITER")
    )
    assert response.status_code == 200
    assert response.json()["data"]["viewer"] == {
        "id": agent_gid("acme", "COPYWRITER"),
        "role": "VIEWER",
        "tenant": {"id": tenant_gid("acme")},
    }


@functools.cache
def _bad_credentials(settings: Settings) -> dict[str, dict[str, str]]:
    """Every kind of bad credential, as the request headers that carry it."""
    secret = settings.jwt_secret
    valid = jwt.encode(_claims(), secret, algorithm="HS256")
    foreign_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "no header": {},
        "empty bearer": {"authorization": "Bearer "},
        "basic scheme": {"authorization": "Basic bWFya2V0ZXI6cGFzc3dvcmQ="},
        "valid token under another scheme": {"authorization": f"Token {valid}"},
        "token without scheme": {"authorization": valid},
        "garbage": _bearer("not-a-jwt"),
        "three garbage segments": _bearer("abc.def.ghi"),
        "expired": _bearer(jwt.encode(_claims(ttl_s=-5), secret, algorithm="HS256")),
        "wrong signature": _bearer(
            jwt.encode(_claims(), "another-secret-of-sufficient-length-123", algorithm="HS256")
        ),
        "tampered payload": _bearer(_swap_payload(valid, _claims(local="owner"))),
        "alg none": _bearer(jwt.encode(_claims(), None, algorithm="none")),
        "rs256 without a jwks url": _bearer(
            jwt.encode(_claims(), foreign_rsa, algorithm="RS256", headers={"kid": "k1"})
        ),
        "wrong aud": _bearer(jwt.encode(_claims(aud="partner"), secret, algorithm="HS256")),
        "missing aud": _bearer(jwt.encode(_claims(aud=None), secret, algorithm="HS256")),
        "missing exp": _bearer(jwt.encode(_claims(exp=None), secret, algorithm="HS256")),
        "missing tid": _bearer(jwt.encode(_claims(tid=None), secret, algorithm="HS256")),
        "missing sub": _bearer(jwt.encode(_claims(sub=None), secret, algorithm="HS256")),
        "malformed sub": _bearer(jwt.encode(_claims(sub="marketer"), secret, algorithm="HS256")),
        "tenant id as sub": _bearer(
            jwt.encode(_claims(sub=tenant_gid("acme")), secret, algorithm="HS256")
        ),
        "tid of a tenant the user is not in": _bearer(
            issue_token(settings, user_gid("acme", "marketer"), tenant_gid("globex"), "dashboard")
        ),
        "unknown user": _bearer(
            issue_token(settings, user_gid("acme", "nobody"), tenant_gid("acme"), "dashboard")
        ),
        "unknown tenant": _bearer(
            issue_token(settings, user_gid("acme", "marketer"), tenant_gid("umbrella"), "dashboard")
        ),
        "agent of another tenant": _bearer(
            issue_token(settings, agent_gid("globex", "COPYWRITER"), tenant_gid("acme"), "agent")
        ),
        "aud agent with a user sub": _bearer(
            issue_token(settings, user_gid("acme", "marketer"), tenant_gid("acme"), "agent")
        ),
        "aud dashboard with an agent sub": _bearer(
            issue_token(settings, agent_gid("acme", "COPYWRITER"), tenant_gid("acme"), "dashboard")
        ),
    }


def _swap_payload(token: str, claims: dict[str, Any]) -> str:
    header, _, signature = token.split(".")
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{payload}.{signature}"


BAD_CREDENTIALS = list(_bad_credentials(Settings()))


@pytest.mark.parametrize("case", BAD_CREDENTIALS)
async def test_bad_credentials_answer_401_with_one_message(
    client: httpx.AsyncClient, settings: Settings, case: str
) -> None:
    headers = _bad_credentials(settings)[case]
    reference = _unauthenticated_message(await _post(client, _bearer("not-a-jwt")))
    response = await _post(client, headers)
    assert _unauthenticated_message(response) == reference
    for value in headers.values():
        token = value.split(" ")[-1]
        if token:
            assert token not in response.text
            assert all(token not in v for v in response.headers.values())


async def test_every_failure_says_the_same_thing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    messages = {
        case: _unauthenticated_message(await _post(client, headers))
        for case, headers in _bad_credentials(settings).items()
    }
    assert len(set(messages.values())) == 1, messages


async def test_a_bad_token_fails_a_mutation_too_and_changes_nothing(
    client: httpx.AsyncClient, db_conn: Any
) -> None:
    before = await db_conn.fetchval("SELECT count(*) FROM preferences")
    response = await _post(
        client,
        _bearer("not-a-jwt"),
        'mutation { setPreference(key: "theme", value: "light") { userErrors { code } } }',
    )
    _unauthenticated_message(response)
    assert await db_conn.fetchval("SELECT count(*) FROM preferences") == before


async def test_tokens_never_appear_in_responses(
    client: httpx.AsyncClient, settings: Settings, token: Any
) -> None:
    tokens = [
        token("acme"),
        token("acme", ttl_s=-5),
        jwt.encode(_claims(), "another-secret-of-sufficient-length-123", algorithm="HS256"),
        issue_token(settings, user_gid("acme", "marketer"), tenant_gid("globex"), "dashboard"),
    ]
    queries = [VIEWER_QUERY, "{ viewer { nope } }", "{ viewer {", '{ node(id: "x") { id } }']
    for each in tokens:
        for query in queries:
            response = await _post(client, _bearer(each), query)
            assert each not in response.text
            # Not even a recognisable piece of it (its signature).
            assert each.rsplit(".", 1)[-1] not in response.text
            assert all(each not in value for value in response.headers.values())


# Caches


async def test_verified_token_is_cached_for_at_most_30_s_and_never_past_exp(
    app: Any, client: httpx.AsyncClient, token: Any
) -> None:
    redis = app.state.redis
    long_lived, short_lived = token("acme", "viewer"), token("acme", "viewer", ttl_s=5)
    for each, limit in ((long_lived, 30), (short_lived, 5)):
        key = "auth:token:" + hashlib.sha256(each.encode()).hexdigest()
        assert await redis.exists(key) == 0
        response = await _post(client, _bearer(each))
        assert response.status_code == 200, response.text
        ttl = await redis.ttl(key)
        assert 0 < ttl <= limit, (limit, ttl)
        exp = jwt.decode(each, options={"verify_signature": False})["exp"]
        assert ttl <= exp - time.time() + 1


SIGNED_BUT_NO_MEMBER = {
    "tid of a tenant the user is not in",
    "unknown user",
    "unknown tenant",
    "agent of another tenant",
}


async def test_forged_or_invalid_tokens_are_not_cached(
    app: Any, client: httpx.AsyncClient, settings: Settings
) -> None:
    redis = app.state.redis
    for case, headers in _bad_credentials(settings).items():
        raw = headers.get("authorization", "").partition(" ")[2].strip()
        if not raw or case in SIGNED_BUT_NO_MEMBER:
            continue  # a genuine signature may be cached; its membership is checked anyway
        await _post(client, headers)
        assert await redis.exists("auth:token:" + hashlib.sha256(raw.encode()).hexdigest()) == 0


INITECH = stable_id("initech", "tenant")
INITECH_VIEWER = stable_id("user", "viewer@initech.example")


async def test_membership_is_cached_until_forgotten(
    app: Any, client: httpx.AsyncClient, settings: Settings, token: Any, db_conn: Any
) -> None:
    redis = app.state.redis
    key = membership_key(INITECH_VIEWER, INITECH)
    authenticator = Authenticator(settings, app.state.db, redis)
    tok = token("initech", "viewer")
    await forget_membership(redis, INITECH_VIEWER, INITECH)

    response = await _post(client, _bearer(tok))
    assert response.json()["data"]["viewer"]["role"] == "VIEWER"
    assert await redis.get(key) == b"VIEWER"
    assert 0 < await redis.ttl(key) <= 300

    promote = "UPDATE memberships SET role = $3 WHERE user_id = $1 AND tenant_id = $2"
    try:
        await db_conn.execute(promote, INITECH_VIEWER, INITECH, "ADMIN")
        # Until the membership is forgotten, the cached role is the one requests run with.
        assert (await authenticator.authenticate(f"Bearer {tok}")).role == "VIEWER"
        assert (await _post(client, _bearer(tok))).status_code == 200
        assert await redis.get(key) == b"VIEWER"
        await forget_membership(redis, INITECH_VIEWER, INITECH)
        assert (await authenticator.authenticate(f"Bearer {tok}")).role == "ADMIN"
        assert await redis.get(key) == b"ADMIN"
    finally:
        await db_conn.execute(promote, INITECH_VIEWER, INITECH, "VIEWER")
        await forget_membership(redis, INITECH_VIEWER, INITECH)
    assert (await authenticator.authenticate(f"Bearer {tok}")).role == "VIEWER"


async def test_removed_membership_is_refused_once_forgotten(
    app: Any, client: httpx.AsyncClient, token: Any, db_conn: Any
) -> None:
    redis = app.state.redis
    tok = token("initech", "viewer")
    await forget_membership(redis, INITECH_VIEWER, INITECH)
    assert (await _post(client, _bearer(tok), "{ tenant { slug } }")).status_code == 200
    row = await db_conn.fetchrow(
        "DELETE FROM memberships WHERE user_id = $1 AND tenant_id = $2 RETURNING *",
        INITECH_VIEWER,
        INITECH,
    )
    assert row is not None
    try:
        cached = await _post(client, _bearer(tok), "{ tenant { slug } }")
        assert cached.json() == {"data": {"tenant": {"slug": "initech"}}}
        await forget_membership(redis, INITECH_VIEWER, INITECH)
        _unauthenticated_message(await _post(client, _bearer(tok), "{ tenant { slug } }"))
        # A new token of the same user fares no better.
        _unauthenticated_message(await _post(client, _bearer(token("initech", "viewer"))))
    finally:
        columns = list(row.keys())
        await db_conn.execute(
            f"INSERT INTO memberships ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})",
            *row.values(),
        )
        await forget_membership(redis, INITECH_VIEWER, INITECH)
    assert (await _post(client, _bearer(tok), "{ tenant { slug } }")).status_code == 200


async def test_terminated_agent_is_refused_once_forgotten(
    app: Any, client: httpx.AsyncClient, agent_token: Any, db_conn: Any
) -> None:
    redis = app.state.redis
    agent_id = stable_id("initech", "agent", "DATA_ANALYST")
    tok = agent_token("initech", "DATA_ANALYST")
    await forget_membership(redis, agent_id, INITECH)
    assert (await _post(client, _bearer(tok))).status_code == 200
    status = await db_conn.fetchval("SELECT status FROM agents WHERE id = $1", agent_id)
    try:
        await db_conn.execute("UPDATE agents SET status = 'TERMINATED' WHERE id = $1", agent_id)
        await forget_membership(redis, agent_id, INITECH)
        _unauthenticated_message(await _post(client, _bearer(tok)))
    finally:
        await db_conn.execute("UPDATE agents SET status = $2 WHERE id = $1", agent_id, status)
        await forget_membership(redis, agent_id, INITECH)
    assert (await _post(client, _bearer(tok))).status_code == 200


async def test_without_redis_tokens_are_still_verified_and_queries_answered(
    settings: Settings, token: Any
) -> None:
    no_redis = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{_free_port()}/0")
    async with running(no_redis) as (_, gateway):
        response = await _post(gateway, _bearer(token("acme")))
        assert response.status_code == 200, response.text
        assert response.json()["data"]["viewer"]["id"] == user_gid("acme", "marketer")
        tenant = await _post(gateway, _bearer(token("globex")), "{ tenant { slug } }")
        assert tenant.json() == {"data": {"tenant": {"slug": "globex"}}}
        for headers in (_bearer(token("acme", ttl_s=-5)), _bearer("not-a-jwt"), {}):
            _unauthenticated_message(await _post(gateway, headers))
        outsider = issue_token(
            settings, user_gid("acme", "marketer"), tenant_gid("globex"), "dashboard"
        )
        _unauthenticated_message(await _post(gateway, _bearer(outsider)))


# RS256 / ES256 via JWKS


@dataclasses.dataclass
class Jwks:
    url: str
    rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    requests: list[str]


@pytest.fixture(scope="module")
def jwks() -> Iterator[Jwks]:
    """A JWKS document with one RSA key (kid rsa-1) and one P-256 key (kid ec-1)."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    ec_jwk = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    document = json.dumps(
        {
            "keys": [
                rsa_jwk | {"kid": "rsa-1", "use": "sig", "alg": "RS256"},
                ec_jwk | {"kid": "ec-1", "use": "sig", "alg": "ES256"},
            ]
        }
    ).encode()
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield Jwks(f"http://{host}:{port}/.well-known/jwks.json", rsa_key, ec_key, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
async def jwks_client(servers: Any, jwks: Jwks) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        mode="production",
        jwks_url=jwks.url,
    )
    async with running(settings) as (_, http):
        yield http


def _signed(jwks: Jwks, algorithm: str, kid: str | None, key: Any = None, **claims: Any) -> str:
    signing_key = key if key is not None else (jwks.rsa if algorithm == "RS256" else jwks.ec)
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(_claims(**claims), signing_key, algorithm=algorithm, headers=headers)


@pytest.mark.parametrize(("algorithm", "kid"), [("RS256", "rsa-1"), ("ES256", "ec-1")])
async def test_jwks_signed_tokens_work(
    jwks_client: httpx.AsyncClient, jwks: Jwks, algorithm: str, kid: str
) -> None:
    response = await _post(jwks_client, _bearer(_signed(jwks, algorithm, kid, local="owner")))
    assert response.status_code == 200, response.text
    viewer = response.json()["data"]["viewer"]
    assert (viewer["id"], viewer["role"]) == (user_gid("acme", "owner"), "OWNER")
    assert jwks.requests and set(jwks.requests) == {"/.well-known/jwks.json"}


def _foreign_keys() -> dict[str, Any]:
    return {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
    }


@pytest.mark.parametrize(
    ("algorithm", "kid", "foreign"),
    [
        ("RS256", "rsa-1", True),  # a published kid, another key
        ("ES256", "ec-1", True),
        ("RS256", "rsa-2", True),  # a kid nobody published
        ("ES256", "ec-2", True),
        ("RS256", None, False),  # no kid at all
        ("ES256", "rsa-1", False),  # the kid of a key of another algorithm
        ("RS256", "ec-1", False),
    ],
)
async def test_jwks_tokens_not_signed_by_the_published_key_are_refused(
    jwks_client: httpx.AsyncClient, jwks: Jwks, algorithm: str, kid: str | None, foreign: bool
) -> None:
    key = _foreign_keys()[algorithm] if foreign else None
    reference = _unauthenticated_message(await _post(jwks_client, _bearer("not-a-jwt")))
    response = await _post(jwks_client, _bearer(_signed(jwks, algorithm, kid, key)))
    assert _unauthenticated_message(response) == reference


async def test_jwks_tokens_are_checked_like_any_other(
    jwks_client: httpx.AsyncClient, jwks: Jwks
) -> None:
    for claims in (
        {"ttl_s": -5},
        {"aud": "partner"},
        {"tid": tenant_gid("globex")},
        {"local": "nobody"},
    ):
        _unauthenticated_message(
            await _post(jwks_client, _bearer(_signed(jwks, "RS256", "rsa-1", **claims)))
        )


async def test_unreachable_jwks_refuses_the_token_cleanly(servers: Any) -> None:
    settings = Settings(
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        mode="production",
        jwks_url=f"http://127.0.0.1:{_free_port()}/.well-known/jwks.json",
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": "rsa-1"})
    async with running(settings) as (_, gateway):
        _unauthenticated_message(await _post(gateway, _bearer(token)))


async def test_a_failing_jwks_is_not_fetched_again_on_every_request(
    servers: Any, jwks: Jwks
) -> None:
    settings = Settings(
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        mode="production",
        jwks_url=jwks.url.replace("jwks.json", "missing.json"),  # answers 404
    )
    token = jwt.encode(_claims(), jwks.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    before = len(jwks.requests)
    async with running(settings) as (_, gateway):
        for _ in range(3):
            _unauthenticated_message(await _post(gateway, _bearer(token)))
    assert len(jwks.requests) - before == 1


# Production policy


async def test_production_refuses_hs256_signed_with_the_development_secret(
    servers: Any,
) -> None:
    development = Settings(database_url=servers.database_url, redis_url=servers.redis_url)
    token = jwt.encode(_claims(), development.jwt_secret, algorithm="HS256")
    async with running(dataclasses.replace(development, mode="production")) as (_, gateway):
        _unauthenticated_message(await _post(gateway, _bearer(token)))


async def test_production_accepts_hs256_with_an_operators_own_secret(servers: Any) -> None:
    settings = Settings(
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        mode="production",
        jwt_secret="an-operators-own-secret-of-enough-length-0123456789",
    )
    token = jwt.encode(_claims(), settings.jwt_secret, algorithm="HS256")
    async with running(settings) as (_, gateway):
        response = await _post(gateway, _bearer(token))
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["id"] == user_gid("acme", "marketer")
