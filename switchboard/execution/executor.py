"""What the serving paths call to execute a validated operation: its plan, or graphql-core.

`OperationExecutor.execute` finds (or makes) the plan of the operation for the values of
the variables its @skip/@include read, and runs it (`run.Run`). What the planner does not
cover runs on graphql-core with the arguments the caller gave, exactly as before, and is
counted by reason: `fallbacks` in this process and `switchboard_execution_fallbacks_total`
at /metrics. Reasons: `mutation`, `subscription`, `introspection`, `directive`,
`fragment_variables`, `field`, `type`, `invalid_variables` (graphql-core reports those),
`plan_error`, `executor_error` (a bug of the run, logged; graphql-core answers instead),
`resolver_spans` (resolver tracing needs graphql-core's middleware) and `disabled`
(`SWITCHBOARD_EXECUTOR=graphql-core`, or `enabled` set to False: a switch for comparisons).
"""

from __future__ import annotations

import collections
import logging
import weakref
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    execute,
)
from graphql.execution import Executor
from graphql.execution.values import VariableValues, get_variable_values

from schema.core import core_schema
from switchboard.execution.plan import OperationPlan, Planner, Shape, Unsupported
from switchboard.execution.plan_cache import SHAPE_BYTES, PlanCache
from switchboard.execution.run import Run
from switchboard.observability.metrics import EXECUTION_FALLBACKS

log = logging.getLogger(__name__)

ABSENT = "\0absent"  # a condition variable without a value, in a plan's key

fallbacks: collections.Counter[str] = collections.Counter()
_BY_SCHEMA: weakref.WeakKeyDictionary[GraphQLSchema, OperationExecutor] = (
    weakref.WeakKeyDictionary()
)


def for_schema(schema: GraphQLSchema) -> OperationExecutor:
    """The executor of a graphql-core schema that Strawberry built (one per schema)."""
    planned = _BY_SCHEMA.get(schema)
    if planned is None:
        planned = _BY_SCHEMA[schema] = OperationExecutor(schema._strawberry_schema)  # type: ignore[attr-defined]
    return planned


def fell_back(reason: str) -> None:
    fallbacks[reason] += 1
    EXECUTION_FALLBACKS.labels(reason).inc()


class OperationExecutor:
    def __init__(self, strawberry_schema: Any, plans: PlanCache | None = None) -> None:
        self.schema = core_schema(strawberry_schema)
        self.planner = Planner(strawberry_schema)
        self.plans = plans if plans is not None else PlanCache()
        self.enabled = True  # False: everything runs on graphql-core (reason `disabled`)

    def prepare(
        self,
        document: DocumentNode,
        document_key: str,
        operation: OperationDefinitionNode,
        raw_variables: dict[str, Any] | None,
        hide_suggestions: bool = False,
    ) -> tuple[OperationPlan, VariableValues] | str:
        """The plan and coerced variables, or the reason to leave it to graphql-core."""
        name = operation.name.value if operation.name else None
        shape_key = ("shape", document_key, name)
        shape: Shape | None = self.plans.get(shape_key)
        if shape is None:
            shape = self.planner.shape(document, operation)
            self.plans.put(shape_key, shape, SHAPE_BYTES)
        if shape.unsupported is not None:
            return shape.unsupported
        variables = get_variable_values(
            self.schema,
            operation.variable_definitions or (),
            raw_variables or {},
            max_errors=50,
            hide_suggestions=hide_suggestions,
        )
        if isinstance(variables, list):
            return "invalid_variables"
        coerced = variables.coerced
        key = (document_key, name, *(coerced.get(v, ABSENT) for v in shape.condition_variables))
        plan: OperationPlan | str | None = self.plans.get(key)
        if plan is None:
            try:
                plan = self.planner.plan(operation, shape, variables)
            except Unsupported as unsupported:
                plan = unsupported.reason
            except GraphQLError:
                plan = "plan_error"
            size = plan.size_bytes if isinstance(plan, OperationPlan) else SHAPE_BYTES
            self.plans.put(key, plan, size)
        if isinstance(plan, str):
            return plan
        return plan, variables

    async def execute(
        self,
        document: DocumentNode,
        document_key: str,
        operation: OperationDefinitionNode,
        *,
        context_value: Any,
        variable_values: dict[str, Any] | None,
        operation_name: str | None,
        executor_class: type | None = None,
        hide_suggestions: bool = False,
        middleware: Any = None,
        response_cache: Any = None,
    ) -> ExecutionResult:
        if not self.enabled:
            prepared: tuple[OperationPlan, VariableValues] | str = "disabled"
        elif middleware is not None:
            prepared = "resolver_spans"
        else:
            prepared = self.prepare(
                document, document_key, operation, variable_values, hide_suggestions
            )
        if not isinstance(prepared, str):
            plan, variables = prepared
            run = Run(self.planner, context_value, variables, hide_suggestions, response_cache)
            try:
                return await run.execute(plan)
            except Exception:  # a bug of the run (field errors never get here): still answer
                log.exception("the planned executor failed; graphql-core answers instead")
                prepared = "executor_error"
                # What the run loaded holds only the columns its plan read.
                loaders = getattr(context_value, "loaders", None)
                if loaders is not None:
                    loaders.close()
                    loaders.reads = None
        fell_back(prepared)
        extra = {"response_cache": response_cache} if response_cache is not None else {}
        result = execute(
            self.schema,
            document,
            context_value=context_value,
            variable_values=variable_values,
            operation_name=operation_name,
            executor_class=executor_class,
            hide_suggestions=hide_suggestions,
            middleware=middleware,
            **extra,
        )
        if not isinstance(result, ExecutionResult):
            result = await result
        return result

    # Live events

    def event_plan(self, executor: Executor) -> OperationPlan | str:
        """The plan of a subscription's per-event execution (`executor` is the one
        graphql-core built when it subscribed: its operation and coerced variables), or
        the reason to leave it to graphql-core."""
        operation = executor.operation
        document = DocumentNode(definitions=(operation, *executor.fragment_definitions.values()))
        shape = self.planner.shape(document, operation, events=True)
        if shape.unsupported is not None:
            return shape.unsupported
        try:
            return self.planner.plan(operation, shape, executor.variable_values)
        except Unsupported as unsupported:
            return unsupported.reason
        except GraphQLError:
            return "plan_error"

    async def execute_event(
        self, executor: Executor, plan: OperationPlan | str, root: Any, context: Any
    ) -> ExecutionResult:
        """One event's payload: `plan` run on `root`, or graphql-core's per-event run."""
        if isinstance(plan, OperationPlan):
            run = Run(
                self.planner, context, executor.variable_values, executor.hide_suggestions, None
            )
            return await run.execute(plan, root)
        fell_back(plan)
        per_event = executor.build_per_event_executor(root)
        per_event.context_value = context
        result = per_event.execute_operation()
        if not isinstance(result, ExecutionResult):
            result = await result  # type: ignore[misc]
        return result
