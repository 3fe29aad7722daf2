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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from graphql import ExecutionResult, GraphQLError, OperationType
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from domain.access import Principal
from domain.errors import DomainError
from resolvers.context import RequestContext
from switchboard.edge import etag
from switchboard.edge.admission import (
    Admitted,
    GraphQLRequest,
    NotExecuted,
    RequestError,
    graphql_request,
    json_param,
    read_body,
)
from switchboard.edge.admission import errors_payload as _errors_payload
from switchboard.edge.timing import ServerTiming
from switchboard.execution.response_cache import CacheRequest, caching_executor
from switchboard.infra.db import StatementCounter, current_counter, unavailable
from switchboard.observability import operations as observed
from switchboard.settings import Settings

if TYPE_CHECKING:
    from switchboard.bootstrap import Services  # wired at the top (bootstrap.py)

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
MASKED = "Internal server error."
UNAVAILABLE = "SERVICE_UNAVAILABLE"
UNAVAILABLE_MESSAGE = "The database cannot be reached now; nothing was changed. Retry shortly."
RETRY_AFTER_S = 1


class GraphQLEndpoint:
    def __init__(
        self, services: Services, graphiql: Callable[[], Awaitable[str]] | None = None
    ) -> None:
        # Everything it uses is wired by the composition root (bootstrap.py).
        self.settings = services.settings
        self.graphiql = graphiql  # GraphiQL's page, in development only (switchboard/graphiql/)
        self.services = services
        self.authenticator = services.authenticator
        self.schema = services.schema
        # The one admission path (edge/admission.py), shared with the live transports; its
        # parts stay reachable here under their old names.
        self.admission = services.admission
        self.limits = self.admission.limits
        self.documents = self.admission.documents
        self.breaker = self.admission.breaker
        self.persisted = self.admission.persisted
        self.rate_limiter = self.admission.rate_limiter
        self.response_cache = services.response_cache
        base = self.schema.execution_context_class
        self.executor_class = caching_executor(base) if self.response_cache else base
        self.execution = services.execution

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
                if self.graphiql is None or not self.settings.development:
                    raise RequestError(404, "NOT_FOUND", "GraphiQL is off in production.")
                return HTMLResponse(await self.graphiql())
            graphql_request = await _read_request(request, self.settings)
            principal = await self._authenticate(request)
            timing.mark("auth")
            if self.rate_limiter is not None:
                await self.admission.rate_limit(principal)
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
        return await self.admission.authenticate(
            request.headers.get("authorization"), request.client.host if request.client else None
        )

    async def _run(
        self,
        request: Request,
        graphql_request: GraphQLRequest,
        principal: Principal,
        timing: ServerTiming,
    ) -> tuple[int, dict[str, Any]]:
        prepare_seconds = self.documents.prepare_seconds

        def http_rules(admitted: Admitted) -> None:
            operation = admitted.operation
            # observability: the operation's name, type and hash on its span and metrics
            observed.identify(
                operation, admitted.resolved.text, principal, admitted.prepared.sha256
            )
            if operation.operation is not OperationType.QUERY and request.method == "GET":
                raise RequestError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    "Only queries may be sent with GET.",
                    {"allow": "POST"},
                )
            if operation.operation is OperationType.SUBSCRIPTION:
                raise RequestError(
                    400,
                    "BAD_REQUEST",
                    "Subscriptions run over websocket or SSE at /graphql/stream, or as "
                    "multipart with Accept: multipart/mixed;subscriptionSpec=1.0.",
                )

        admitted = await self.admission.admit(graphql_request, principal, http_rules)
        prepared, operation = admitted.prepared, admitted.operation
        timing.mark("doc")
        timing.add("parse", self.documents.prepare_seconds - prepare_seconds)
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


async def _read_request(request: Request, settings: Settings) -> GraphQLRequest:
    limit = settings.max_body_bytes
    if request.method == "GET":
        if len(request.url.query) > limit:
            raise RequestError(413, "BAD_REQUEST", f"The query string exceeds {limit} bytes.")
        params = request.query_params
        return graphql_request(
            params.get("query"),
            json_param(params.get("variables"), "variables"),
            params.get("operationName"),
            json_param(params.get("extensions"), "extensions"),
            settings,
        )
    if request.method != "POST":
        raise RequestError(405, "METHOD_NOT_ALLOWED", "Use GET or POST.", {"allow": "GET, POST"})
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise RequestError(415, "BAD_REQUEST", "Send the request as application/json.")
    body = await read_body(request, limit)
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
    return graphql_request(
        payload.get("query"),
        payload.get("variables"),
        payload.get("operationName"),
        payload.get("extensions"),
        settings,
    )


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
