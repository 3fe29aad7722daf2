"""Authentication: bearer JWTs into a `Principal` (who, in which tenant, with which role).

- HS256 tokens are signed with SWITCHBOARD_JWT_SECRET; RS256/ES256 tokens are verified
  against the key set at SWITCHBOARD_JWKS_URL when one is configured.
- A verified token is cached in Redis under the sha256 of the token for 30 s, never past
  its `exp`; the membership of (sub, tid) is cached for 5 minutes and dropped by
  `forget_membership` (switchboard/infra/membership_cache.py) when it changes. One Redis
  round trip reads both.
- Any failure is `Unauthenticated` with the same message: nothing tells an expired token
  from a forged one or from a user who is not a member.
- Redis being down never blocks a request: the caches are skipped and the token and
  membership are checked directly.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from typing import Any

import httpx
import jwt
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from domain.access import Principal
from domain.errors import BadUserInput, Unauthenticated
from domain.ids import parse_global_id
from domain.store.access import membership
from switchboard.infra.breaker import RedisBreaker
from switchboard.infra.db import Database
from switchboard.infra.membership_cache import membership_key
from switchboard.settings import DEV_JWT_SECRET, Settings

log = logging.getLogger(__name__)

AUDIENCES = ("dashboard", "mobile", "agent")
# The one answer to every authentication failure: nothing tells the causes apart.
REFUSED = "Invalid or expired token."
JWKS_REFRESH_S = 600.0
JWKS_RETRY_S = 10.0


def issue_token(
    settings: Settings,
    subject: str,
    tenant: str,
    audience: str,
    ttl_s: int = 12 * 3600,
) -> str:
    """An HS256 token for development, tests and the CLI."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "tid": tenant,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def _token_key(token: str) -> str:
    return "auth:token:" + hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(
        self, settings: Settings, db: Database, redis: Redis, breaker: RedisBreaker | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        # The edge's breaker: while Redis is failing, the cache is skipped (one log line).
        self.breaker = breaker or RedisBreaker(settings.redis_retry_s)
        self._jwks: dict[str, jwt.PyJWK] = {}
        self._jwks_fetched_at = self._jwks_attempted_at = float("-inf")
        # In production HS256 is accepted only with a secret of the operator's own.
        self._hs256_allowed = settings.development or settings.jwt_secret != DEV_JWT_SECRET

    async def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated(REFUSED)
        token = token.strip()
        subject_id, tenant_id = _peek_identity(token)
        token_key, role_key = _token_key(token), membership_key(subject_id, tenant_id)
        cached_claims, cached_role = await self._cache_get(token_key, role_key)
        now = time.time()
        if cached_claims is not None and cached_claims["exp"] > now:
            claims = cached_claims
        else:
            claims = await self._verify(token)
            ttl = min(self.settings.token_cache_ttl_s, int(claims["exp"] - now))
            if ttl > 0:
                await self._cache_set(token_key, orjson.dumps(claims), ttl)
        is_agent = claims["aud"] == "agent"
        if cached_role is not None:
            role = cached_role.decode()
        else:
            role = await self._membership(subject_id, tenant_id, is_agent)
            await self._cache_set(role_key, role.encode(), self.settings.membership_cache_ttl_s)
        return Principal(
            subject_id=subject_id,
            tenant_id=tenant_id,
            audience=claims["aud"],
            is_agent=is_agent,
            role=None if is_agent else role,
            expires_at=float(claims["exp"]),
        )

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            if algorithm == "HS256" and self._hs256_allowed:
                key: Any = self.settings.jwt_secret
            elif algorithm in ("RS256", "ES256") and self.settings.jwks_url:
                key = await self._jwks_key(header.get("kid"), algorithm)
            else:
                raise Unauthenticated(REFUSED)
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=list(AUDIENCES),
                issuer=self.settings.jwt_issuer,
                options={"require": ["sub", "tid", "aud", "exp"]},
            )
        except (jwt.PyJWTError, ValueError) as error:
            raise Unauthenticated(REFUSED) from error
        subject_kind, _ = parse_or_reject(claims["sub"])
        if (claims["aud"] == "agent") != (subject_kind == "Agent"):
            raise Unauthenticated(REFUSED)
        return {
            "sub": claims["sub"],
            "tid": claims["tid"],
            "aud": claims["aud"],
            "exp": claims["exp"],
        }

    async def _jwks_key(self, kid: str | None, algorithm: str) -> Any:
        now = time.monotonic()
        stale = now - self._jwks_fetched_at > JWKS_REFRESH_S
        # An unknown kid refetches (key rotation) at most once a minute; a failed fetch is
        # retried after JWKS_RETRY_S, not on every request.
        wait = JWKS_RETRY_S if stale else 60.0
        if (stale or kid not in self._jwks) and now - self._jwks_attempted_at > wait:
            self._jwks_attempted_at = now
            assert self.settings.jwks_url is not None
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    response = await client.get(self.settings.jwks_url)
                    response.raise_for_status()
                key_set = jwt.PyJWKSet.from_dict(response.json())
            except (httpx.HTTPError, jwt.PyJWTError, ValueError) as error:
                # The keys already known still verify; a token needing another is refused.
                log.warning("JWKS fetch failed: %s", type(error).__name__)
            else:
                self._jwks = {k.key_id or "": k for k in key_set.keys}
                self._jwks_fetched_at = time.monotonic()
        found = self._jwks.get(kid or "")
        # A key verifies only tokens of its own algorithm (PyJWT raises TypeError otherwise).
        if found is None or found.algorithm_name != algorithm:
            raise Unauthenticated(REFUSED)
        return found.key

    async def _membership(self, subject_id: uuid.UUID, tenant_id: uuid.UUID, is_agent: bool) -> str:
        role = await membership(self.db, subject_id, tenant_id, is_agent)
        if role is None:
            raise Unauthenticated(REFUSED)
        return role

    async def _cache_get(self, *keys: str) -> tuple[dict[str, Any] | None, bytes | None]:
        if not self.breaker.available():
            return None, None
        try:
            token_value, membership_value = await self.redis.mget(keys)
        except (RedisError, OSError) as error:
            self.breaker.failed("auth cache", error)
            return None, None
        return (orjson.loads(token_value) if token_value else None), membership_value

    async def _cache_set(self, key: str, value: bytes, ttl_s: int) -> None:
        if not self.breaker.available():
            return
        try:
            await self.redis.set(key, value, ex=ttl_s)
        except (RedisError, OSError) as error:
            self.breaker.failed("auth cache", error)


def parse_or_reject(global_id: Any) -> tuple[str, uuid.UUID]:
    if not isinstance(global_id, str):
        raise Unauthenticated(REFUSED)
    try:
        return parse_global_id(global_id)
    except BadUserInput:
        raise Unauthenticated(REFUSED) from None


@functools.lru_cache(maxsize=4096)
def _peek_identity(token: str) -> tuple[uuid.UUID, uuid.UUID]:
    """sub and tid from the unverified payload: only to name cache keys, never trusted.
    Remembered per token (a pure function of it): PyJWT checks the token's alphabet one
    character at a time, about 0.1 ms of every request's CPU."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Unauthenticated(REFUSED) from None
    subject_kind, subject_id = parse_or_reject(claims.get("sub"))
    tenant_kind, tenant_id = parse_or_reject(claims.get("tid"))
    if subject_kind not in ("User", "Agent") or tenant_kind != "Tenant":
        raise Unauthenticated(REFUSED)
    return subject_id, tenant_id
