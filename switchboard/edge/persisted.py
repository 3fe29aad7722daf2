"""Persisted queries: Automatic Persisted Queries and the trusted documents of manifests.

A request names a persisted document in `extensions.persistedQuery`
(`{"version": 1, "sha256Hash": "<hex sha256 of the text>"}`, Apollo's protocol), over
POST or GET (`extensions` as a JSON query parameter). `resolve` turns a request into the
document text to run:

- trusted documents: the persisted-query manifests (Apollo's
  `apollo-persisted-query-manifest` format) loaded at start. Their ids are the sha256 of
  their bodies (checked while loading). Tokens with `aud` = mobile may run only these,
  by id and without text; anything else answers PERSISTED_QUERY_REQUIRED (400);
- APQ: a hash without text runs the registered document, or answers
  PERSISTED_QUERY_NOT_FOUND (200, so the client sends it again with the text); a hash
  with text must be the sha256 of that text (else 400 BAD_REQUEST), and the text is
  registered (`register`, once it has validated) in Redis under `apq:<hash>` for
  `ttl_s`, so every gateway instance knows it. A process also keeps the hashes it has
  seen in a bounded local map, so a known hash needs no Redis round trip and still
  resolves while Redis is down.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from switchboard.infra.breaker import RedisBreaker

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "apollo-persisted-query-manifest"
LOCAL_APQ_SIZE = 5000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PersistedQueryError(Exception):
    """A persisted-query request that cannot run: code, HTTP status and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class TrustedOperation:
    id: str
    name: str
    type: str
    body: str


@dataclass(frozen=True, slots=True)
class Resolved:
    """The text to run; `register` when it is an APQ registration to store once valid."""

    text: str
    sha256: str | None
    register: bool = False
    trusted: bool = False


class ManifestError(Exception):
    """A persisted-query manifest that cannot be used; the message names the file."""


def load_manifest(path: Path) -> list[TrustedOperation]:
    """The operations of one manifest. A missing, unreadable or malformed manifest, or an id
    that is not the sha256 of its body, is a ManifestError: the process must not start
    without the trusted documents its clients rely on."""
    try:
        manifest = orjson.loads(path.read_bytes())
    except OSError as error:
        raise ManifestError(
            f"persisted-query manifest {path} cannot be read: {error.strerror}"
        ) from None
    except orjson.JSONDecodeError as error:
        raise ManifestError(f"persisted-query manifest {path} is not valid JSON: {error}") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != MANIFEST_FORMAT
        or manifest.get("version") != 1
    ):
        raise ManifestError(f"{path}: not an {MANIFEST_FORMAT} of version 1")
    operations = []
    for entry in manifest.get("operations", []):
        try:
            operation = TrustedOperation(entry["id"], entry["name"], entry["type"], entry["body"])
        except (KeyError, TypeError):
            raise ManifestError(
                f"{path}: every operation needs an id, a name, a type and a body"
            ) from None
        if hashlib.sha256(operation.body.encode()).hexdigest() != operation.id:
            raise ManifestError(f"{path}: the id of {operation.name} is not the sha256 of its body")
        operations.append(operation)
    return operations


class PersistedQueries:
    def __init__(
        self,
        redis: Redis,
        breaker: RedisBreaker,
        manifests: Iterable[Path] = (),
        ttl_s: int = 7 * 86400,
    ) -> None:
        """Load `manifests`; any that cannot be used is a ManifestError."""
        self.redis = redis
        self.breaker = breaker
        self.ttl_s = ttl_s
        self.trusted: dict[str, TrustedOperation] = {}
        self._local: OrderedDict[str, str] = OrderedDict()
        for path in manifests:
            for operation in load_manifest(path):
                self.trusted[operation.id] = operation

    async def resolve(
        self, query: str | None, extensions: dict[str, Any] | None, audience: str
    ) -> Resolved:
        persisted = (extensions or {}).get("persistedQuery")
        if audience == "mobile":
            return self._trusted_only(query, persisted)
        if persisted is None:
            if query is None:
                raise PersistedQueryError(400, "BAD_REQUEST", "`query` must be a non-empty string.")
            return Resolved(query, None)
        sha = _hash_of(persisted)
        if query is not None:
            if hashlib.sha256(query.encode()).hexdigest() != sha:
                raise PersistedQueryError(
                    400, "BAD_REQUEST", "`sha256Hash` is not the sha256 of the query text."
                )
            known = sha in self.trusted or sha in self._local
            return Resolved(query, sha, register=not known, trusted=sha in self.trusted)
        trusted = self.trusted.get(sha)
        if trusted is not None:
            return Resolved(trusted.body, sha, trusted=True)
        text = self._local.get(sha)
        if text is None:
            text = await self._fetch(sha)
            if text is None:
                raise PersistedQueryError(
                    200, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound"
                )
            self._remember(sha, text)
        else:
            self._local.move_to_end(sha)
        return Resolved(text, sha)

    def _trusted_only(self, query: str | None, persisted: Any) -> Resolved:
        required = PersistedQueryError(
            400,
            "PERSISTED_QUERY_REQUIRED",
            "Mobile clients send only the operations of the persisted-query manifest, by id.",
        )
        if query is not None or persisted is None:
            raise required
        sha = _hash_of(persisted)
        trusted = self.trusted.get(sha)
        if trusted is None:
            raise required
        return Resolved(trusted.body, sha, trusted=True)

    async def register(self, sha: str, text: str) -> None:
        """Keep a validated APQ document, here and in Redis for every instance."""
        self._remember(sha, text)
        if not self.breaker.available():
            return
        try:
            await self.redis.set(_key(sha), text.encode(), ex=self.ttl_s)
        except (RedisError, OSError) as error:
            self.breaker.failed("apq register", error)

    async def _fetch(self, sha: str) -> str | None:
        if not self.breaker.available():
            return None
        try:
            value = await self.redis.get(_key(sha))
        except (RedisError, OSError) as error:
            self.breaker.failed("apq lookup", error)
            return None
        return value.decode() if value is not None else None

    def _remember(self, sha: str, text: str) -> None:
        self._local[sha] = text
        if len(self._local) > LOCAL_APQ_SIZE:
            self._local.popitem(last=False)


def _hash_of(persisted: Any) -> str:
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise PersistedQueryError(
            400, "BAD_REQUEST", "`extensions.persistedQuery` needs version 1 and a sha256Hash."
        )
    sha = persisted.get("sha256Hash")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise PersistedQueryError(
            400, "BAD_REQUEST", "`sha256Hash` must be 64 lowercase hexadecimal digits."
        )
    return sha


def _key(sha: str) -> str:
    return f"apq:{sha}"
