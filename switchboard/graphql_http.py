"""GraphQL over HTTP at /graphql, as the contract's README describes it.

One request goes: read the GraphQL request (GET or POST JSON, within the size limits) →
authenticate → rate limit (`edge.ratelimit`) → find the document (`edge.persisted`:
APQ and trusted documents) → take it parsed, validated and analysed from the cache →
check the operation limits (`edge.limits`) → execute, with mobileHome, spend and
spendReport served from the response cache (`edge.response_cache`) → answer with orjson,
an ETag (GET), Server-Timing and X-Response-Time. Compression is the app's middleware.

Every failure answers with the contract's error code and HTTP status; a request that fails
before execution (parse, validation, variables that do not coerce) answers 400 or 200 by the
response's media type (`pre_execution_status`). Nothing unexpected leaks (outside
development mode its message is replaced, and it is logged here instead), including failures
outside execution, which answer INTERNAL_SERVER_ERROR with 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import ExecutionResult, GraphQLError, OperationType
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from domain.access import Principal
from domain.errors import DomainError
from switchboard.auth import Authenticator
from switchboard.context import RequestContext, Services
from switchboard.db import StatementCounter, current_counter, unavailable
from switchboard.documents import DocumentCache
from switchboard.edge import etag
from switchboard.edge.breaker import RedisBreaker
from switchboard.edge.limits import TOO_COMPLEX, OperationLimits
from switchboard.edge.persisted import PersistedQueries, PersistedQueryError
from switchboard.edge.ratelimit import Decision, RateLimiter
from switchboard.edge.response_cache import CacheRequest, ResponseCache, caching_executor
from switchboard.edge.timing import ServerTiming
from switchboard.execution.executor import OperationExecutor
from switchboard.graphiql import page as graphiql_page
from switchboard.observability import operations as observed
from switchboard.settings import Settings

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
MASKED = "Internal server error."
UNAVAILABLE = "SERVICE_UNAVAILABLE"
UNAVAILABLE_MESSAGE = "The database cannot be reached now; nothing was changed. Retry shortly."
RETRY_AFTER_S = 1


class RequestError(Exception):
    """The request cannot run: answered with one error, `code` and HTTP `status`."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


class NotExecuted(Exception):
    """The operation never started: its document does not parse or validate, or its
    variables do not coerce. Its status follows the media type (`pre_execution_status`)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload)
        self.payload = payload


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str | None  # None: a persisted query named in `extensions`
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None = None


class GraphQLEndpoint:
    def __init__(
        self,
        settings: Settings,
        services: Services,
        authenticator: Authenticator,
        schema: Any,
    ) -> None:
        self.settings = settings
        self.services = services
        self.authenticator = authenticator
        self.schema = schema
        self.limits = OperationLimits(
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_tokens=settings.max_tokens,
            max_cost=settings.max_cost,
        )
        self.documents = DocumentCache(
            schema._schema, limits=self.limits, introspection=settings.development
        )
        self.breaker = RedisBreaker(settings.redis_retry_s)
        self.persisted = PersistedQueries(
            services.redis,
            self.breaker,
            settings.pq_manifests,
            ttl_s=settings.apq_ttl_s,
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
        self.response_cache = (
            ResponseCache(
                services.redis,
                self.breaker,
                {"home": settings.cache_home_ttl_s, "spend": settings.cache_spend_ttl_s},
            )
            if settings.response_cache_enabled
            else None
        )
        base = schema.execution_context_class
        self.executor_class = caching_executor(base) if self.response_cache else base
        self.execution = OperationExecutor(schema)  # its plans; graphql-core for the rest

    async def __call__(self, request: Request) -> Response:
        timing = ServerTiming()
        counter = StatementCounter()
        current_counter.set(counter)
        media_type = _response_media_type(request)
        headers: dict[str, str] = {}
        executed_get = False
        try:
            if (
                request.method == "GET"
                and _wants_html(request)
                and "query" not in request.query_params
                and "extensions" not in request.query_params
            ):
                if not self.settings.development:
                    raise RequestError(404, "NOT_FOUND", "GraphiQL is off in production.")
                return HTMLResponse(await graphiql_page.render(self.settings, self.services.db))
            graphql_request = await _read_request(request, self.settings)
            principal = await self._authenticate(request)
            timing.mark("auth")
            if self.rate_limiter is not None:
                _refuse_over_limit(
                    await self.rate_limiter.hit_tenant(principal.tenant_id.hex, principal.audience)
                )
                timing.mark("rl")
            status, payload = await self._run(request, graphql_request, principal, timing)
            executed_get = request.method == "GET"
        except NotExecuted as failure:
            status, payload = pre_execution_status(media_type), failure.payload
        except RequestError as error:
            status, payload = error.status, _errors_payload(error.code, error.message)
            headers = error.headers
        except DomainError as error:  # authentication
            status = 401 if error.code == "UNAUTHENTICATED" else 400
            payload = _errors_payload(error.code, error.message)
        except Exception as error:
            if unavailable(error):  # an outage, not a bug: the client retries shortly
                status, payload = 503, _errors_payload(UNAVAILABLE, UNAVAILABLE_MESSAGE)
            else:
                log.exception("unexpected error outside execution")
                message = MASKED
                if self.settings.development:
                    message = f"{type(error).__name__}: {error}"
                status, payload = 500, _errors_payload("INTERNAL_SERVER_ERROR", message)
        if status == 503:
            headers["retry-after"] = str(RETRY_AFTER_S)
        observed.result(status, payload)  # observability: errors by code
        body = orjson.dumps(payload)
        if executed_get and status == 200:  # errors before execution carry no ETag
            tag = etag.etag_of(body)
            headers.update({"etag": tag, "cache-control": etag.CACHE_CONTROL, "vary": etag.VARY})
            if etag.matches(request.headers.get("if-none-match"), tag):
                status, body = 304, b""
        response = Response(body, status_code=status, media_type=media_type, headers=headers)
        if self.settings.development:
            response.headers["x-sql-statements"] = str(counter.count)
        response.headers["server-timing"] = timing.header()
        response.headers["x-response-time"] = f"{timing.total_ms():.2f}ms"
        return response

    async def _authenticate(self, request: Request) -> Principal:
        """The token's principal; a request without a valid one counts against its IP."""
        try:
            return await self.authenticator.authenticate(request.headers.get("authorization"))
        except DomainError:
            if self.rate_limiter is not None:
                address = request.client.host if request.client else "unknown"
                _refuse_over_limit(await self.rate_limiter.hit_ip(address))
            raise

    async def _run(
        self,
        request: Request,
        graphql_request: GraphQLRequest,
        principal: Principal,
        timing: ServerTiming,
    ) -> tuple[int, dict[str, Any]]:
        try:
            resolved = await self.persisted.resolve(
                graphql_request.query, graphql_request.extensions, principal.audience
            )
        except PersistedQueryError as error:
            raise RequestError(error.status, error.code, error.message) from None
        prepare_seconds = self.documents.prepare_seconds
        prepared = self.documents.get(resolved.text)
        timing.mark("doc")
        timing.add("parse", self.documents.prepare_seconds - prepare_seconds)
        if prepared.too_complex:
            raise RequestError(400, TOO_COMPLEX, prepared.too_complex)
        if prepared.parse_errors:
            raise NotExecuted(
                _formatted(prepared.parse_errors, "GRAPHQL_PARSE_FAILED", self.settings)
            )
        if prepared.validation_errors:
            raise NotExecuted(
                _formatted(prepared.validation_errors, "GRAPHQL_VALIDATION_FAILED", self.settings)
            )
        operation = prepared.operation(graphql_request.operation_name)
        if operation is None:
            raise NotExecuted(
                _errors_payload(
                    "GRAPHQL_VALIDATION_FAILED", "No single operation matches `operationName`."
                )
            )
        # observability: the operation's name, type and hash on its span and metrics
        observed.identify(operation, resolved.text, principal, prepared.sha256)
        if operation.operation is not OperationType.QUERY and request.method == "GET":
            raise RequestError(
                405, "METHOD_NOT_ALLOWED", "Only queries may be sent with GET.", {"allow": "POST"}
            )
        if operation.operation is OperationType.SUBSCRIPTION:
            raise RequestError(
                400, "BAD_REQUEST", "Subscriptions run over the websocket at /graphql."
            )
        analysis = prepared.analysis(operation)
        if analysis is not None:
            violation = analysis.violation(graphql_request.variables, self.limits)
            if violation is not None:
                raise RequestError(400, TOO_COMPLEX, violation)
        if resolved.register and resolved.sha256:
            await self.persisted.register(resolved.sha256, resolved.text)
        cache_request = None
        if self.response_cache is not None and operation.operation is OperationType.QUERY:
            cache_request = CacheRequest(
                cache=self.response_cache,
                tenant_hex=principal.tenant_id.hex,
                role=principal.role or "AGENT",
                document_sha=prepared.sha256,
                operation_name=operation.name.value if operation.name else None,
                variables=graphql_request.variables,
            )
        context = RequestContext.for_principal(principal, self.services)
        try:
            result = await self.execution.execute(
                prepared.document,  # type: ignore[arg-type]
                prepared.sha256,
                operation,
                context_value=context,
                variable_values=graphql_request.variables,
                operation_name=graphql_request.operation_name,
                executor_class=self.executor_class,
                hide_suggestions=not self.settings.development,
                middleware=observed.resolver_middleware(),  # None unless resolver spans are on
                response_cache=cache_request,
            )
        finally:
            context.loaders.close()
        timing.mark("exec")
        if _variables_rejected(result):
            errors = [format_error(error, self.settings) for error in result.errors or ()]
            raise NotExecuted({"errors": errors})
        if cache_request is not None and cache_request.outcomes:
            timing.note("cache", " ".join(cache_request.outcomes))
        return result_payload(result, self.settings)


def _refuse_over_limit(decision: Decision) -> None:
    if not decision.allowed:
        raise RequestError(
            429,
            "RATE_LIMITED",
            f"Too many requests; retry in {decision.retry_after_s} s.",
            {"retry-after": str(decision.retry_after_s)},
        )


async def _read_request(request: Request, settings: Settings) -> GraphQLRequest:
    limit = settings.max_body_bytes
    if request.method == "GET":
        if len(request.url.query) > limit:
            raise RequestError(413, "BAD_REQUEST", f"The query string exceeds {limit} bytes.")
        params = request.query_params
        return _graphql_request(
            params.get("query"),
            _json_param(params.get("variables"), "variables"),
            params.get("operationName"),
            _json_param(params.get("extensions"), "extensions"),
            settings,
        )
    if request.method != "POST":
        raise RequestError(405, "METHOD_NOT_ALLOWED", "Use GET or POST.", {"allow": "GET, POST"})
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise RequestError(415, "BAD_REQUEST", "Send the request as application/json.")
    body = await _read_body(request, limit)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RequestError(400, "BAD_REQUEST", "The request body is not valid JSON.") from None
    if isinstance(payload, list):
        # Batching is refused rather than capped: one operation per request keeps rate
        # limits, status codes, caching and ETags per operation.
        raise RequestError(
            400,
            "BAD_REQUEST",
            "Batched requests (a JSON array) are not supported: send one operation per request.",
        )
    if not isinstance(payload, dict):
        raise RequestError(400, "BAD_REQUEST", "The request body must be a JSON object.")
    return _graphql_request(
        payload.get("query"),
        payload.get("variables"),
        payload.get("operationName"),
        payload.get("extensions"),
        settings,
    )


async def _read_body(request: Request, limit: int) -> bytes:
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


def _json_param(raw: str | None, name: str) -> Any:
    if raw is None or raw == "":
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError(400, "BAD_REQUEST", f"`{name}` is not valid JSON.") from None


def _graphql_request(
    query: Any, variables: Any, operation_name: Any, extensions: Any, settings: Settings
) -> GraphQLRequest:
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
            _errors_payload("BAD_USER_INPUT", "Text may not contain the NUL character.")
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


def result_payload(result: ExecutionResult, settings: Settings) -> tuple[int, dict[str, Any]]:
    payload: dict[str, Any] = {}
    if not result.errors:
        return 200, {"data": result.data}
    errors = [format_error(error, settings) for error in result.errors]
    payload["errors"] = errors
    payload["data"] = result.data
    if any(e["extensions"]["code"] == UNAVAILABLE for e in errors):
        # Half an answer from a database that went away would mislead; a mutation's
        # transaction rolled back. The whole request is to be retried.
        return 503, _errors_payload(UNAVAILABLE, UNAVAILABLE_MESSAGE)
    internal = any(e["extensions"]["code"] == "INTERNAL_SERVER_ERROR" for e in errors)
    return (500 if internal and result.data is None else 200), payload


def format_error(error: GraphQLError, settings: Settings) -> dict[str, Any]:
    original = error.original_error
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
    if error.path:
        formatted["path"] = error.path
    if isinstance(original, DomainError):
        formatted["message"] = original.message
        code = original.code
    elif original is None or (isinstance(original, GraphQLError) and error.path is None):
        # Variable coercion (graphql-core keeps the scalar's GraphQLError as the original;
        # such errors have no path) and argument errors found while executing.
        code = "BAD_USER_INPUT"
    elif unavailable(original):
        code = UNAVAILABLE
        formatted["message"] = UNAVAILABLE_MESSAGE
    else:
        log.error("unexpected error in %s", error.path, exc_info=original)
        code = "INTERNAL_SERVER_ERROR"
        if not settings.development:
            formatted["message"] = "Internal server error."
    formatted["extensions"] = {"code": code}
    return formatted


def _formatted(errors: list[GraphQLError], code: str, settings: Settings) -> dict[str, Any]:
    formatted = []
    for error in errors:
        entry = format_error(error, settings)
        entry["extensions"]["code"] = code
        formatted.append(entry)
    return {"errors": formatted}


def _errors_payload(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def _variables_rejected(result: ExecutionResult) -> bool:
    """Whether execution never started because the variables do not coerce: graphql-core
    then answers only errors without a path (a resolver's errors always have one), of its
    own or of a scalar's parsing."""
    return (
        result.data is None
        and bool(result.errors)
        and all(
            e.path is None
            and (e.original_error is None or isinstance(e.original_error, GraphQLError))
            for e in result.errors
        )
    )


def pre_execution_status(media_type: str) -> int:
    """The status of a request that fails before execution: 400 for a client that accepts
    application/graphql-response+json, 200 for one that accepts only application/json (a
    client that may not know GraphQL's errors from a failed request), as GraphQL over HTTP
    recommends."""
    return 400 if media_type == GRAPHQL_RESPONSE_JSON else 200


def _response_media_type(request: Request) -> str:
    accept = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE_JSON if GRAPHQL_RESPONSE_JSON in accept else "application/json"


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")
