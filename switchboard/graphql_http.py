"""GraphQL over HTTP at /graphql, as the contract's README describes it.

One request goes: read the GraphQL request (GET or POST JSON) → authenticate → take the
parsed and validated document from the cache → execute → answer with orjson. Every
failure answers with the contract's error code and HTTP status; nothing unexpected leaks
(outside development mode its message is replaced, and it is logged here instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import ExecutionResult, GraphQLError, OperationType, execute
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.http.ides import get_graphql_ide_html

from domain.errors import DomainError
from switchboard.auth import Authenticator
from switchboard.context import RequestContext, Services
from switchboard.db import StatementCounter, current_counter
from switchboard.documents import DocumentCache
from switchboard.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


class RequestError(Exception):
    """The request cannot run: answered with one error, `code` and HTTP `status`."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


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
        self.documents = DocumentCache(schema._schema)

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        counter = StatementCounter()
        current_counter.set(counter)
        media_type = _response_media_type(request)
        try:
            if (
                request.method == "GET"
                and _wants_html(request)
                and "query" not in request.query_params
            ):
                if not self.settings.development:
                    raise RequestError(404, "NOT_FOUND", "GraphiQL is off in production.")
                return HTMLResponse(get_graphql_ide_html())
            graphql_request = await _read_request(request)
            principal = await self.authenticator.authenticate(request.headers.get("authorization"))
            status, payload = await self._run(request, graphql_request, principal, media_type)
        except RequestError as error:
            status, payload = error.status, _errors_payload(error.code, error.message)
            response = _json_response(status, payload, media_type, error.headers)
        except DomainError as error:  # authentication
            status = 401 if error.code == "UNAUTHENTICATED" else 400
            response = _json_response(
                status, _errors_payload(error.code, error.message), media_type
            )
        else:
            response = _json_response(status, payload, media_type)
        if self.settings.development:
            response.headers["x-sql-statements"] = str(counter.count)
        response.headers["x-response-time"] = f"{(time.perf_counter() - started) * 1000:.2f}ms"
        return response

    async def _run(
        self, request: Request, graphql_request: GraphQLRequest, principal: Any, media_type: str
    ) -> tuple[int, dict[str, Any]]:
        prepared = self.documents.get(graphql_request.query)
        if prepared.parse_errors:
            return 400, _formatted(prepared.parse_errors, "GRAPHQL_PARSE_FAILED", self.settings)
        if prepared.validation_errors:
            return 400, _formatted(
                prepared.validation_errors, "GRAPHQL_VALIDATION_FAILED", self.settings
            )
        operation = prepared.operation(graphql_request.operation_name)
        if operation is None:
            raise RequestError(
                400, "GRAPHQL_VALIDATION_FAILED", "No single operation matches `operationName`."
            )
        if operation.operation is not OperationType.QUERY and request.method == "GET":
            raise RequestError(
                405, "METHOD_NOT_ALLOWED", "Only queries may be sent with GET.", {"allow": "POST"}
            )
        if operation.operation is OperationType.SUBSCRIPTION:
            raise RequestError(
                400, "BAD_REQUEST", "Subscriptions run over the websocket at /graphql."
            )
        context = RequestContext.for_principal(principal, self.services)
        try:
            result = execute(
                self.schema._schema,
                prepared.document,  # type: ignore[arg-type]
                context_value=context,
                variable_values=graphql_request.variables,
                operation_name=graphql_request.operation_name,
                executor_class=self.schema.execution_context_class,
            )
            if not isinstance(result, ExecutionResult):
                result = await result
        finally:
            context.loaders.close()
        return _result_payload(result, self.settings)


async def _read_request(request: Request) -> GraphQLRequest:
    if request.method == "GET":
        params = request.query_params
        return _graphql_request(
            params.get("query"),
            _json_param(params.get("variables"), "variables"),
            params.get("operationName"),
        )
    if request.method != "POST":
        raise RequestError(405, "METHOD_NOT_ALLOWED", "Use GET or POST.", {"allow": "GET, POST"})
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise RequestError(415, "BAD_REQUEST", "Send the request as application/json.")
    body = await _read_body(request)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RequestError(400, "BAD_REQUEST", "The request body is not valid JSON.") from None
    if isinstance(payload, list):
        raise RequestError(400, "BAD_REQUEST", "Batched requests are not supported.")
    if not isinstance(payload, dict):
        raise RequestError(400, "BAD_REQUEST", "The request body must be a JSON object.")
    return _graphql_request(
        payload.get("query"), payload.get("variables"), payload.get("operationName")
    )


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError(413, "BAD_REQUEST", f"The body exceeds {MAX_BODY_BYTES} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(413, "BAD_REQUEST", f"The body exceeds {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_param(raw: str | None, name: str) -> Any:
    if raw is None or raw == "":
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError(400, "BAD_REQUEST", f"`{name}` is not valid JSON.") from None


def _graphql_request(query: Any, variables: Any, operation_name: Any) -> GraphQLRequest:
    if not isinstance(query, str) or not query.strip():
        raise RequestError(400, "BAD_REQUEST", "`query` must be a non-empty string.")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "BAD_REQUEST", "`variables` must be a JSON object.")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "BAD_REQUEST", "`operationName` must be a string.")
    if "\x00" in query or "\\u0000" in query or _holds_nul(variables):
        # PostgreSQL text cannot hold U+0000; refuse it here rather than fail in a query.
        raise RequestError(200, "BAD_USER_INPUT", "Text may not contain the NUL character.")
    return GraphQLRequest(query=query, variables=variables, operation_name=operation_name)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _result_payload(result: ExecutionResult, settings: Settings) -> tuple[int, dict[str, Any]]:
    payload: dict[str, Any] = {}
    if not result.errors:
        return 200, {"data": result.data}
    errors = [_format_error(error, settings) for error in result.errors]
    if result.data is None and all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in errors):
        # Variables that do not fit their types: the operation never started.
        payload["errors"] = errors
        return 200, payload
    payload["errors"] = errors
    payload["data"] = result.data
    internal = any(e["extensions"]["code"] == "INTERNAL_SERVER_ERROR" for e in errors)
    return (500 if internal and result.data is None else 200), payload


def _format_error(error: GraphQLError, settings: Settings) -> dict[str, Any]:
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
        entry = _format_error(error, settings)
        entry["extensions"]["code"] = code
        formatted.append(entry)
    return {"errors": formatted}


def _errors_payload(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def _response_media_type(request: Request) -> str:
    accept = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE_JSON if GRAPHQL_RESPONSE_JSON in accept else "application/json"


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _json_response(
    status: int, payload: dict[str, Any], media_type: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, media_type=media_type, headers=headers
    )
