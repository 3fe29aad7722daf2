"""Per-field cost of the planned executor alone, against graphql-core, on synthetic data.

This script owns the executor benchmark of issue 14. No database, no HTTP: a small
Strawberry schema shaped like ours (plain attributes filled in advance, relations that
return a request-scoped DataLoader's future, dispatched by `loaders.batching`'s
BatchScheduler as the gateway's are) and two operations:

- wide: 1,000 objects of 10 plain fields each (10,000 fields, no resolver but the root);
- loader: 1,000 parents, each with a relation through one loader to a child of 10 plain
  fields (1,000 objects x 10 fields through one batch, plus the parents' own field).

Each runs through graphql-core (`execute` with Strawberry's execution context, as the
gateway did) and through `switchboard.execution` (its plan made once, before timing),
interleaved, `--rounds` times; the script first checks that both answers are identical.
Reported: median and p90 ms per execution, and microseconds per field (median / fields).
The target is 0.5 us per field or less for the planned executor.

Run (from the repository root, in the venv):

    python perf/bench_executor.py               # --rounds 50
    python perf/bench_executor.py --rounds 200 --json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import statistics
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import orjson
import strawberry
from graphql import ExecutionResult, execute, parse

from loaders.batching import BatchScheduler, ScheduledLoader
from schema.core import core_schema
from switchboard.execution.executor import OperationExecutor

OBJECTS = 1000


@strawberry.type
class Row:
    id: strawberry.ID
    name: str
    title: str
    kind: str
    status: str
    priority: int
    count: int
    active: bool
    note: str | None
    owner: str


@strawberry.type
class Parent:
    id: strawberry.ID
    child_id: strawberry.Private[int]

    @strawberry.field(graphql_type=Row)
    def child(self, info: strawberry.Info) -> Awaitable[Row]:
        return info.context.loader.load(self.child_id)


class Context:
    """Per execution, as the gateway's RequestContext: a fresh loader."""

    def __init__(self, children: list[Row]) -> None:
        async def batch(keys: Sequence[int]) -> list[Row]:
            return [children[key] for key in keys]

        self.loader = ScheduledLoader(batch, BatchScheduler())


def _row(index: int) -> Row:
    return Row(
        id=strawberry.ID(f"row_{index}"),
        name=f"name {index}",
        title=f"title {index}",
        kind="A",
        status="ACTIVE",
        priority=index % 10,
        count=index,
        active=bool(index % 2),
        note=None if index % 3 else "note",
        owner="owner",
    )


ROWS = [_row(i) for i in range(OBJECTS)]
PARENTS = [Parent(id=strawberry.ID(f"p_{i}"), child_id=i) for i in range(OBJECTS)]


@strawberry.type
class Query:
    @strawberry.field
    def rows(self) -> list[Row]:
        return ROWS

    @strawberry.field
    def parents(self) -> list[Parent]:
        return PARENTS


SCHEMA = strawberry.Schema(query=Query)
FIELDS = "id name title kind status priority count active note owner"
OPERATIONS = {
    "wide": (f"query Wide {{ rows {{ {FIELDS} }} }}", OBJECTS * 10),
    "loader": (f"query Loader {{ parents {{ id child {{ {FIELDS} }} }} }}", OBJECTS * 12),
}


async def _graphql_core(document: Any) -> ExecutionResult:
    result = execute(
        core_schema(SCHEMA),
        document,
        context_value=Context(ROWS),
        executor_class=SCHEMA.execution_context_class,
    )
    if not isinstance(result, ExecutionResult):
        result = await result
    return result


async def _planned(planned: OperationExecutor, document: Any, sha: str) -> ExecutionResult:
    operation = document.definitions[0]
    return await planned.execute(
        document,
        sha,
        operation,
        context_value=Context(ROWS),
        variable_values=None,
        operation_name=None,
    )


async def main(rounds: int) -> dict[str, Any]:
    planned = OperationExecutor(SCHEMA)
    gc.freeze()
    report: dict[str, Any] = {}
    for name, (text, fields) in OPERATIONS.items():
        document = parse(text)
        sha = hashlib.sha256(text.encode()).hexdigest()
        reference, result = await _graphql_core(document), await _planned(planned, document, sha)
        assert not reference.errors and not result.errors, (reference.errors, result.errors)
        assert orjson.dumps(reference.data) == orjson.dumps(result.data), name
        times: dict[str, list[float]] = {"graphql-core": [], "planned": []}
        for _ in range(rounds):
            for label in times:
                started = time.perf_counter()
                if label == "planned":
                    await _planned(planned, document, sha)
                else:
                    await _graphql_core(document)
                times[label].append(time.perf_counter() - started)
        report[name] = {
            label: {
                "median_ms": statistics.median(values) * 1000,
                "p90_ms": statistics.quantiles(values, n=10)[-1] * 1000,
                "us_per_field": statistics.median(values) * 1e6 / fields,
            }
            for label, values in times.items()
        }
        report[name]["fields"] = fields
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(main(args.rounds))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{'operation':10} {'executor':13} {'median ms':>10} {'p90 ms':>8} {'us/field':>9}")
        for name, entry in figures.items():
            for label in ("graphql-core", "planned"):
                row = entry[label]
                print(
                    f"{name:10} {label:13} {row['median_ms']:10.2f} {row['p90_ms']:8.2f}"
                    f" {row['us_per_field']:9.3f}"
                )
