"""The plan cache's byte bound holds in real memory: a plan's estimated size (what the cache
counts against `MAX_PLAN_BYTES`) is at least what planning it allocates, for every contract
query, and a full cache of them stays within the bound. No servers: planning needs only
the schema."""

from __future__ import annotations

import gc
import tracemalloc

from graphql import parse

from schema.schema import schema
from switchboard.execution.executor import OperationExecutor
from switchboard.execution.plan import OperationPlan
from switchboard.execution.plan_cache import PlanCache
from tests.support.contract import VARIABLES, query_operations

OPERATIONS = query_operations("dashboard", "mobile")
COPIES = 10  # plans per operation, under distinct document keys
VALUES = {**VARIABLES, "id": "cmp_00000000000000000000000000000000"}


def test_estimated_plan_bytes_cover_what_plans_allocate() -> None:
    executor = OperationExecutor(schema, PlanCache(max_entries=10**6, max_bytes=10**12))
    documents = {name: parse(text) for name, text in OPERATIONS.items()}
    for name, document in documents.items():  # the schema's own memos, made once
        executor.prepare(document, f"warm-{name}", document.definitions[0], VALUES)  # type: ignore[arg-type]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for copy in range(COPIES):
            for name, document in documents.items():
                prepared = executor.prepare(
                    document,
                    f"{name}-{copy}",
                    document.definitions[0],  # type: ignore[arg-type]
                    VALUES,
                )
                assert isinstance(prepared, tuple), (name, prepared)
                assert isinstance(prepared[0], OperationPlan)
        gc.collect()
        allocated = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    estimated = sum(
        size
        for key, (_, size) in executor.plans._entries.items()
        if not str(key[1] if key[0] == "shape" else key[0]).startswith("warm-")
    )
    assert estimated >= allocated > 0, (estimated, allocated)
