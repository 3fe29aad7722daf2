"""Admission: what every operation passes before it runs, whatever carries it.

GraphQL over HTTP (`graphql_http.py`), websocket (`live/websocket.py`), SSE (`live/sse.py`)
and multipart (`live/multipart.py`) call this one path; each transport keeps only its
framing and turns a refusal into its own answer (an HTTP status, an `error` message, a
`next` event with the errors):

    authenticate (a failure counts against the client's IP)  →  rate limit the tenant
    →  the request's shape (`graphql_request`)  →  the document (`edge.persisted`: APQ and
    trusted documents; mobile tokens send manifest ids only)  →  parsed, validated and
    analysed from the document cache  →  the operation  →  the operation limits

Refusals are `RequestError` (one error, a code and an HTTP status) or `NotExecuted` (the
document does not parse or validate: its status follows the media type, GraphQL over HTTP).
`core_schema` (schema/core.py) is the graphql-core schema behind Strawberry's, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLError, OperationDefinitionNode
from starlette.requests import Request

from domain.access import Principal
from domain.errors import DomainError
from schema.core import core_schema
from switchboard.edge.auth import Authenticator
from switchboard.edge.documents import DocumentCache, PreparedDocument
from switchboard.edge.limits import TOO_COMPLEX, OperationLimits
from switchboard.edge.persisted import PersistedQueries, PersistedQueryError, Resolved
from switchboard.edge.ratelimit import Decision, RateLimiter
from switchboard.settings import Settings

if TYPE_CHECKING:
    from switchboard.bootstrap import Services  # wired at the top (bootstrap.py)


class RequestError(Exception):
    """The request cannot run: answered with one error, `code` and HTTP `status`."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})

    def errors(self) -> list[dict[str, Any]]:
        return errors_payload(self.code, self.message)["errors"]


class NotExecuted(Exception):
    """The operation never started: its document does not parse or validate, or its
    variables do not coerce. Over HTTP its status follows the media type."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload)
        self.payload = payload


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str | None  # None: a persisted query named in `extensions`
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Admitted:
    """A document that may run: parsed, validated and within the limits."""

    resolved: Resolved
    prepared: PreparedDocument
    operation: OperationDefinitionNode

    @property
    def name(self) -> str | None:
        return self.operation.name.value if self.operation.name else None


class Admission:
    """The edge's services (documents, persisted queries, limits, rate limiter), shared by
    every transport of one gateway process."""

    def __init__(
        self, settings: Settings, services: Services, authenticator: Authenticator, schema: Any
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.schema = schema
        self.limits = OperationLimits(
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_tokens=settings.max_tokens,
            max_cost=settings.max_cost,
        )
        self.documents = DocumentCache(
            core_schema(schema), limits=self.limits, introspection=settings.development
        )
        self.breaker = authenticator.breaker  # one per process, for every Redis use here
        self.persisted = PersistedQueries(
            services.redis, self.breaker, settings.pq_manifests, ttl_s=settings.apq_ttl_s
        )
        # Trusted documents are parsed, validated and analysed now, before any request.
        for operation in self.persisted.trusted.values():
            self.documents.pin(operation.body)
        self.rate_limiter = (
            RateLimiter(
                services.redis,
                self.breaker,
                {
                    "dashboard": settings.rate_limit_dashboard,
                    "mobile": settings.rate_limit_mobile,
                    "agent": settings.rate_limit_agent,
                    "anonymous": settings.rate_limit_anonymous,
                },
                settings.rate_limit_window_s,
            )
            if settings.rate_limit_enabled
            else None
        )

    async def authenticate(self, authorization: str | None, client_host: str | None) -> Principal:
        """The token's principal (DomainError UNAUTHENTICATED otherwise); a request without
        a valid token counts against its IP, and past that limit answers RATE_LIMITED."""
        try:
            return await self.authenticator.authenticate(authorization)
        except DomainError:
            if self.rate_limiter is not None:
                refuse_over_limit(await self.rate_limiter.hit_ip(client_host or "unknown"))
            raise

    async def rate_limit(self, principal: Principal) -> None:
        if self.rate_limiter is not None:
            refuse_over_limit(
                await self.rate_limiter.hit_tenant(principal.tenant_id.hex, principal.audience)
            )

    async def admit(
        self,
        request: GraphQLRequest,
        principal: Principal,
        check: Callable[[Admitted], None] | None = None,
    ) -> Admitted:
        """The request's document, ready to run; `check` is the transport's own rule on the
        operation (its type, its method), applied before the limits."""
        try:
            resolved = await self.persisted.resolve(
                request.query, request.extensions, principal.audience
            )
        except PersistedQueryError as error:
            raise RequestError(error.status, error.code, error.message) from None
        prepared = self.documents.get(resolved.text)
        if prepared.too_complex:
            raise RequestError(400, TOO_COMPLEX, prepared.too_complex)
        if prepared.parse_errors:
            raise NotExecuted(
                formatted(prepared.parse_errors, "GRAPHQL_PARSE_FAILED", self.settings)
            )
        if prepared.validation_errors:
            raise NotExecuted(
                formatted(prepared.validation_errors, "GRAPHQL_VALIDATION_FAILED", self.settings)
            )
        operation = prepared.operation(request.operation_name)
        if operation is None:
            raise NotExecuted(
                errors_payload(
                    "GRAPHQL_VALIDATION_FAILED", "No single operation matches `operationName`."
                )
            )
        admitted = Admitted(resolved, prepared, operation)
        if check is not None:
            check(admitted)
        analysis = prepared.analysis(operation)
        if analysis is not None:
            violation = analysis.violation(request.variables, self.limits)
            if violation is not None:
                raise RequestError(400, TOO_COMPLEX, violation)
        if resolved.register and resolved.sha256:
            await self.persisted.register(resolved.sha256, resolved.text)
        return admitted


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused with 413 past `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, "BAD_REQUEST", f"The body exceeds {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "BAD_REQUEST", f"The body exceeds {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def json_param(raw: str | None, name: str) -> Any:
    """A JSON-encoded query-string parameter (GET's `variables`, `extensions`)."""
    if raw is None or raw == "":
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError(400, "BAD_REQUEST", f"`{name}` is not valid JSON.") from None


def refuse_over_limit(decision: Decision) -> None:
    if not decision.allowed:
        raise RequestError(
            429,
            "RATE_LIMITED",
            f"Too many requests; retry in {decision.retry_after_s} s.",
            {"retry-after": str(decision.retry_after_s)},
        )


def graphql_request(
    query: Any, variables: Any, operation_name: Any, extensions: Any, settings: Settings
) -> GraphQLRequest:
    """A request's parameters, checked for shape and size, from any transport."""
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError(400, "BAD_REQUEST", "`extensions` must be a JSON object.")
    persisted = extensions is not None and "persistedQuery" in extensions
    if not (query is None and persisted) and (not isinstance(query, str) or not query.strip()):
        raise RequestError(400, "BAD_REQUEST", "`query` must be a non-empty string.")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "BAD_REQUEST", "`variables` must be a JSON object.")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "BAD_REQUEST", "`operationName` must be a string.")
    if variables and len(orjson.dumps(variables)) > settings.max_variables_bytes:
        raise RequestError(
            413, "BAD_REQUEST", f"`variables` exceed {settings.max_variables_bytes} bytes."
        )
    if (query is not None and ("\x00" in query or "\\u0000" in query)) or _holds_nul(variables):
        # PostgreSQL text cannot hold U+0000; refuse it here rather than fail in a query.
        raise NotExecuted(
            errors_payload("BAD_USER_INPUT", "Text may not contain the NUL character.")
        )
    return GraphQLRequest(
        query=query, variables=variables, operation_name=operation_name, extensions=extensions
    )


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def formatted(errors: list[GraphQLError], code: str, settings: Settings) -> dict[str, Any]:
    # Imported here: graphql_http imports this module, and format_error lives there.
    from switchboard.edge.http import format_error

    entries = []
    for error in errors:
        entry = format_error(error, settings)
        entry["extensions"]["code"] = code
        entries.append(entry)
    return {"errors": entries}


def errors_payload(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}
