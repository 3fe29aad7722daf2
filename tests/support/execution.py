"""Run one operation on both executors, graphql-core (the reference) and the planned one,
on the same data and principal, and compare what a client would receive."""

from __future__ import annotations

from typing import Any

import orjson
from graphql import ExecutionResult, execute
from starlette.applications import Starlette

from resolvers.context import RequestContext
from schema.core import core_schema
from switchboard.edge.http import format_error
from switchboard.execution.executor import OperationExecutor
from switchboard.infra.db import StatementCounter, current_counter


def outcome(result: ExecutionResult, settings: Any) -> tuple[bytes, frozenset[tuple[Any, ...]]]:
    """The data as bytes (orjson) and the errors as a set of (message, path, code)."""
    errors = frozenset(
        (
            formatted["message"],
            tuple(formatted.get("path") or ()),
            formatted["extensions"]["code"],
        )
        for formatted in (format_error(e, settings) for e in result.errors or ())
    )
    return orjson.dumps(result.data), errors


async def both(
    app: Starlette,
    planned: OperationExecutor,
    bearer: str,
    query: str,
    variables: dict[str, Any] | None = None,
) -> tuple[tuple[bytes, frozenset[Any]], tuple[bytes, frozenset[Any]], bool, tuple[int, int]]:
    """(reference outcome, planned outcome, whether the planned path ran its plan, and the
    SQL statements each issued)."""
    endpoint = app.state.graphql
    principal = await endpoint.authenticator.authenticate(f"Bearer {bearer}")
    prepared = endpoint.documents.get(query)
    assert not prepared.parse_errors and not prepared.validation_errors, prepared
    operation = prepared.operation(None)
    assert operation is not None

    counters = StatementCounter(), StatementCounter()
    context = RequestContext.for_principal(principal, endpoint.services)
    current_counter.set(counters[0])
    try:
        reference = execute(
            core_schema(endpoint.schema),
            prepared.document,
            context_value=context,
            variable_values=variables,
            executor_class=endpoint.schema.execution_context_class,
        )
        if not isinstance(reference, ExecutionResult):
            reference = await reference
    finally:
        context.loaders.close()

    context = RequestContext.for_principal(principal, endpoint.services)
    current_counter.set(counters[1])
    planned_ran = not isinstance(
        planned.prepare(prepared.document, prepared.sha256, operation, variables), str
    )
    try:
        result = await planned.execute(
            prepared.document,
            prepared.sha256,
            operation,
            context_value=context,
            variable_values=variables,
            operation_name=None,
            executor_class=endpoint.schema.execution_context_class,
        )
    finally:
        context.loaders.close()
        current_counter.set(None)
    settings = endpoint.settings
    statements = counters[0].count, counters[1].count
    return outcome(reference, settings), outcome(result, settings), planned_ran, statements
