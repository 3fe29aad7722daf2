"""The breadth-first run of a plan: one request's response, written as it goes.

Values at hand (plain attributes, resolvers that answer at once) are completed right away,
depth first, as graphql-core completes them; a resolver that answers with a loader's future
(or a coroutine, made a task once) is set aside with where its value goes. When nothing is
left at hand, the run awaits what was set aside, in order: the first await lets the
request's `BatchScheduler` dispatch every loader of the level in one statement each, and
the rest are then already done. Their values are completed, which sets aside the next
level, and so on. No task or coroutine per field or object. A declared relation
(`FieldPlan.loader`) runs its key function (its access checks) per object at once, but
its keys wait in a group per field, loaded with one `load_many` when the level is
awaited, so a level's relation costs one future, not one per object.

Errors and nulls follow the spec and graphql-core: an error is located at its field's path;
a failed nullable position becomes null; a failed non-null one nulls its nearest nullable
ancestor (its "anchor"), which is written after the run (`trims`), and a synchronous
failure stops completing the objects it nulls, as graphql-core's exception does. Errors
that arrive inside an already nulled position are dropped (graphql-core's
`CollectedErrors`). The response cache's fields (`FieldPlan.cache_group`) run as a sub-run
of their own through `ResponseCache.get_or_compute`, so that their completed value can be
stored and served.
"""

from __future__ import annotations

import asyncio
from asyncio import Future
from collections.abc import Iterable
from inspect import isawaitable, iscoroutine
from typing import Any

from graphql import ExecutionResult, GraphQLError, located_error
from graphql.execution import Executor
from graphql.execution.values import VariableValues, get_argument_values

from switchboard.execution.compiled import DONE, MAX_INT, MIN_INT, NULLED, compile_object
from switchboard.execution.plan import (
    EVENT,
    LEAF,
    RESOLVER,
    TYPENAME,
    FieldPlan,
    ObjectPlan,
    OperationPlan,
    Planner,
    null_message,
)
from switchboard.execution.response_cache import CacheRequest

complete_leaf = Executor.complete_leaf_value
COMPLETE, CACHED, GROUP = 0, 1, 2  # what a pending entry's value is for
Path = tuple[Any, str | int] | None  # (parent path, key); None is the root


class Group:
    """One relation field's keys of a level and where each value goes."""

    __slots__ = ("future", "keys", "places")

    def __init__(self) -> None:
        self.keys: list[Any] = []
        self.places: list[tuple[Any, Path, Path]] = []  # (out, path, anchor) per key
        self.future: Future[list[Any]] | None = None


class ResolverInfo:
    """What resolvers receive as `info`: they read only `info.context` (see schema/)."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


class Run:
    def __init__(
        self,
        planner: Planner,
        context: Any,
        variables: VariableValues,
        hide_suggestions: bool,
        cache_request: CacheRequest | None,
        errors: list[GraphQLError] | None = None,
        nulled: set[Path] | None = None,
    ) -> None:
        self.planner = planner
        self.info = ResolverInfo(context)
        self.variables = variables
        self.hide_suggestions = hide_suggestions
        self.cache_request = cache_request
        self.errors: list[GraphQLError] = [] if errors is None else errors
        self.nulled: set[Path] = set() if nulled is None else nulled  # positions nulled
        self.trims: list[Path] = []  # nullable ancestors to null once the run is done
        self.pending: list[tuple[Any, FieldPlan, Any, Any, Path, Path, int]] = []
        # A declared relation's keys of this level, and where each value goes; the group's
        # future is set when the level is awaited. Its pending entry holds the group.
        self.groups: dict[FieldPlan, Group] = {}
        self.arguments: dict[FieldPlan, Any] = {}
        # While awaited values are completed: non-null failures to record after them.
        self.deferred: list[tuple[GraphQLError, Path]] | None = None

    async def execute(self, plan: OperationPlan, root: Any = None) -> ExecutionResult:
        """Run `plan` on a context whose loaders (if it has any) have loaded nothing yet:
        they select only the columns the plan reads."""
        loaders = getattr(self.info.context, "loaders", None)
        if loaders is not None:
            loaders.reads = plan.reads
        data: dict[str, Any] | None = {}
        self.object(plan.root, root, data, None, None)
        await self.drain()
        if self.trims:
            data = trim(data, self.trims)
        if None in self.nulled:
            data = None
        return ExecutionResult(data, self.errors or None)

    # Levels

    async def drain(self) -> None:
        while self.pending:
            if self.groups:
                self.load_groups()
            pending, self.pending = self.pending, []
            self.deferred = []
            for awaitable, f, out, key, path, anchor, mode in pending:
                if mode == GROUP:
                    await self.complete_group(f, out)
                    continue
                if self.deferred and not awaitable.done():
                    self.flush()
                try:
                    value = await awaitable
                except Exception as error:
                    if not (self.nulled and self.inside_nulled(path)):
                        self.fail(f, error, out, key, path, anchor, f.nullable[0])
                    continue
                if self.nulled and self.inside_nulled(path):
                    continue  # graphql-core drops what completes inside a nulled position
                if mode == CACHED:
                    out[key] = value  # completed already (and its errors recorded)
                else:
                    self.complete(f, value, out, key, path, anchor, 0)
            self.flush()
            self.deferred = None

    def load_groups(self) -> None:
        """Hand each group's keys to its loader: all before the first await, so the level
        is still one batch per loader."""
        groups, self.groups = self.groups, {}
        loaders = self.info.context.loaders
        for f, group in groups.items():
            assert f.loader is not None
            group.future = getattr(loaders, f.loader).load_many(group.keys)

    async def complete_group(self, f: FieldPlan, group: Group) -> None:
        """Complete each value of a relation's group where it goes, as each object's own
        future would have been completed."""
        future = group.future
        assert future is not None
        if self.deferred and not future.done():
            self.flush()
        try:
            values = await future
        except Exception as error:  # the whole batch failed: every object's field fails
            values = [error] * len(group.keys)
        key = f.key
        complete_value = f.complete_value
        for value, (out, path, anchor) in zip(values, group.places, strict=True):
            if self.nulled and self.inside_nulled(path):
                continue  # graphql-core drops what completes inside a nulled position
            if complete_value is not None:
                complete_value(self, value, out, key, path, anchor)
            else:
                self.complete(f, value, out, key, path, anchor, 0)

    def flush(self) -> None:
        """Null the anchors of the non-null failures of the values that came together.

        graphql-core records a nullable field's error at once but nulls an ancestor across
        an await one loop iteration later, so the errors of every value that came in the
        same iteration are kept: so here."""
        deferred, self.deferred = self.deferred, []
        for error, anchor in deferred or ():
            self.add(error, anchor)
            self.trims.append(anchor)

    # Objects

    def object(
        self, plan: ObjectPlan, source: Any, out: dict[str, Any], path: Path, anchor: Path
    ) -> bool:
        """Complete `source`'s fields into `out`. True: a non-null failure nulled a
        position above this object (the caller stops, as graphql-core's exception does)."""
        complete = plan.complete
        if complete is None:
            complete = plan.complete = compile_object(plan)
        resume = complete(self, source, out, path, anchor)
        if resume == DONE:
            return False
        if resume == NULLED:
            return True
        return self.object_fields(plan, source, out, path, anchor, resume)

    def object_fields(
        self,
        plan: ObjectPlan,
        source: Any,
        out: dict[str, Any],
        path: Path,
        anchor: Path,
        index: int = 0,
    ) -> bool:
        """`object`'s work as a walk over the plan's fields, from field `index` on: where
        the generated completion hands over (after a field failed)."""
        fields = plan.fields
        count = len(fields)
        while index < count:
            f = fields[index]
            try:
                while True:
                    kind = f.kind
                    if kind == LEAF:
                        value = getattr(source, f.attr)
                        if value is None:
                            if not f.nullable[0]:
                                raise TypeError(null_message(f))
                            out[f.key] = None
                        elif type(value) is f.fast and (
                            f.fast is not int or MIN_INT <= value <= MAX_INT
                        ):
                            out[f.key] = value
                        elif f.memo is not None:
                            serialized = f.memo.get(value)
                            if serialized is None:
                                serialized = f.memo[value] = complete_leaf(f.leaf, value)
                            out[f.key] = serialized
                        else:
                            out[f.key] = complete_leaf(f.leaf, value)
                    elif kind == TYPENAME:
                        out[f.key] = plan.type_name
                    elif kind == RESOLVER:
                        if self.resolve(f, source, out, (path, f.key), anchor):
                            return True
                    elif self.complete(
                        f,
                        source if kind == EVENT else getattr(source, f.attr),
                        out,
                        f.key,
                        (path, f.key),
                        anchor,
                        0,
                    ):
                        return True
                    index += 1
                    if index == count:
                        return False
                    f = fields[index]
            except Exception as error:
                if self.fail(f, error, out, f.key, (path, f.key), anchor, f.nullable[0]):
                    return True
                index += 1
        return False

    def resolve(
        self,
        f: FieldPlan,
        source: Any,
        out: dict[str, Any],
        path: Path,
        anchor: Path,
        cache: bool = True,
    ) -> bool:
        if cache and f.cache_group is not None and self.cache_request is not None:
            out[f.key] = None  # keeps the response's order until the value comes
            task = asyncio.ensure_future(self.cached(f, source, path, anchor))
            self.pending.append((task, f, out, f.key, path, anchor, CACHED))
            return False
        kwargs = self.arguments.get(f)
        if kwargs is None:
            kwargs = self.arguments[f] = self.call_arguments(f)
        if isinstance(kwargs, Exception):
            raise kwargs
        if f.source_names:
            kwargs = {**kwargs, **dict.fromkeys(f.source_names, source)}
        result = f.resolve(source, **kwargs) if f.pass_self else f.resolve(**kwargs)  # type: ignore[misc]
        if f.loader is not None and result is not None:  # a relation's key
            out[f.key] = None
            group = self.groups.get(f)
            if group is None:
                group = self.group(f)
            group.keys.append(result)
            group.places.append((out, path, anchor))
            return False
        if isinstance(result, Future):
            out[f.key] = None
            self.pending.append((result, f, out, f.key, path, anchor, COMPLETE))
            return False
        if iscoroutine(result) or isawaitable(result):
            out[f.key] = None
            task = asyncio.ensure_future(result)
            self.pending.append((task, f, out, f.key, path, anchor, COMPLETE))
            return False
        return self.complete(f, result, out, f.key, path, anchor, 0)

    def group(self, f: FieldPlan) -> Group:
        """A new group for relation `f`'s keys of this level, completed when it is awaited."""
        group = self.groups[f] = Group()
        self.pending.append((None, f, group, None, None, None, GROUP))
        return group

    def call_arguments(self, f: FieldPlan) -> dict[str, Any] | Exception:
        """The resolver's keyword arguments for this request (once per field and run)."""
        kwargs = f.kwargs
        if kwargs is None:
            try:
                assert f.field_def is not None
                values = get_argument_values(
                    f.field_def, f.nodes[0], self.variables, None, self.hide_suggestions
                )
                kwargs = self.planner.convert(f, values)
            except Exception as error:  # each object's field reports it, as graphql-core does
                return error
        if f.info_name is not None:
            kwargs = {**kwargs, f.info_name: self.info}
        return kwargs

    # Values

    def complete(
        self, f: FieldPlan, value: Any, out: Any, key: Any, path: Path, anchor: Path, level: int
    ) -> bool:
        """Complete `value` at position `path` (out[key]); True: a failure nulled a
        position above it."""
        nullable = f.nullable[level]
        if value is None:
            if nullable:
                out[key] = None
                return False
            return self.fail(f, TypeError(null_message(f)), out, key, path, anchor, False)
        if isinstance(value, Exception):
            return self.fail(f, value, out, key, path, anchor, nullable)
        inner_anchor = path if nullable else anchor
        try:
            if level < f.list_depth:
                # A list (nearly always) skips the Iterable ABC's check.
                if type(value) is not list and (
                    isinstance(value, str | bytes | dict) or not isinstance(value, Iterable)
                ):
                    raise GraphQLError(
                        "Expected Iterable, but did not find one for field"
                        f" '{f.parent_type}.{f.name}'."
                    )
                items: list[Any] = []
                out[key] = items
                for index, item in enumerate(value):
                    items.append(None)
                    if self.complete(f, item, items, index, (path, index), inner_anchor, level + 1):
                        return not nullable
                return False
            if f.leaf is not None:
                if type(value) is f.fast and (f.fast is not int or MIN_INT <= value <= MAX_INT):
                    out[key] = value
                elif f.memo is not None:
                    serialized = f.memo.get(value)
                    if serialized is None:
                        serialized = f.memo[value] = complete_leaf(f.leaf, value)
                    out[key] = serialized
                else:
                    out[key] = complete_leaf(f.leaf, value)
                return False
            plan = f.object
            if plan is None:
                assert f.possible is not None
                name = self.planner.class_names.get(type(value))
                plan = f.possible.get(name) if name is not None else None
                if plan is None:
                    raise GraphQLError(
                        f"Abstract type '{f.abstract_name}' must resolve to an Object type at"
                        f" runtime for field '{f.parent_type}.{f.name}'."
                    )
        except Exception as error:
            return self.fail(f, error, out, key, path, anchor, nullable)
        child: dict[str, Any] = {}
        out[key] = child
        if self.object(plan, value, child, path, inner_anchor):
            return not nullable
        return False

    # Errors

    def fail(
        self,
        f: FieldPlan,
        error: Exception,
        out: Any,
        key: Any,
        path: Path,
        anchor: Path,
        nullable: bool,
    ) -> bool:
        """Record `error` at `path`; null the position (nullable) or its anchor. True: the
        failure nulled a position above `path`."""
        located = located_error(error, f.nodes, as_list(path))
        if nullable:
            out[key] = None
            self.add(located, path)
            return False
        if self.deferred is not None:
            self.deferred.append((located, anchor))
            return True
        self.add(located, anchor)
        self.trims.append(anchor)
        return True

    def add(self, error: GraphQLError, position: Path) -> None:
        if self.nulled and self.inside_nulled(position):
            return
        self.nulled.add(position)
        self.errors.append(error)

    def inside_nulled(self, path: Path) -> bool:
        nulled = self.nulled
        while path is not None:
            if path in nulled:
                return True
            path = path[0]
        return None in nulled

    # The response cache

    async def cached(self, f: FieldPlan, source: Any, path: Path, anchor: Path) -> Any:
        request = self.cache_request
        assert request is not None and f.cache_group is not None
        path_list = as_list(path)
        entry = request.entry(f.cache_group, path_list, str(getattr(source, "row_id", "") or ""))
        computed = False

        async def compute() -> tuple[Any, bool]:
            nonlocal computed
            computed = True
            sub = Run(
                self.planner,
                self.info.context,
                self.variables,
                self.hide_suggestions,
                self.cache_request,
                self.errors,
                self.nulled,
            )
            sub.arguments = self.arguments
            holder: dict[str, Any] = {}
            try:
                sub.resolve(f, source, holder, path, anchor, cache=False)
            except Exception as error:
                sub.fail(f, error, holder, f.key, path, anchor, f.nullable[0])
            await sub.drain()
            depth = len(path_list)
            inside = [t for t in sub.trims if len(as_list(t)) > depth]
            self.trims.extend(t for t in sub.trims if len(as_list(t)) <= depth)
            value = (
                trim(holder, [_relative(t, depth - 1) for t in inside])[f.key]
                if inside
                else holder.get(f.key)
            )
            clean = not any(
                e.path is not None and list(e.path[:depth]) == path_list for e in self.errors
            )
            return value, clean

        try:
            return await request.cache.get_or_compute(entry, compute)
        finally:
            request.outcomes.append("miss" if computed else "hit")


def as_list(path: Path) -> list[str | int]:
    keys: list[str | int] = []
    while path is not None:
        keys.append(path[1])
        path = path[0]
    keys.reverse()
    return keys


def _relative(path: Path, drop: int) -> list[str | int]:
    return as_list(path)[drop:]


def trim(data: Any, trims: list[Any]) -> Any:
    """`data` with null at each of `trims` (paths, or key lists); a trim at the root
    nulls all of it."""
    for position in trims:
        keys = position if isinstance(position, list) else as_list(position)
        if not keys:
            return None
        container = data
        for key in keys[:-1]:
            if container is None:
                break
            container = container[key]
        if container is not None:
            container[keys[-1]] = None
    return data
