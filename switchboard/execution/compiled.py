"""Completion code generated once per plan (as graphql-jit compiles a query).

`Run.object` completes an object by walking its plan's fields and asking each `FieldPlan`
what it is. The function generated here per `ObjectPlan` does the same walk unrolled: one
straight block per field with its response key, attribute, serializer and null shape as
constants, so a plain field costs an attribute read, a type check and a store, and a
custom scalar calls its own serializer. A declared relation whose arguments are known at
planning runs its key function and queues the key in the level's group right there (what
`Run.resolve` does for it). A field whose values are objects of one type, at most one
list deep, gets a generated value completion of its own (`FieldPlan.complete_value`),
which the run also uses for the values a level's loaders answer. Everything else
(resolvers, abstract types, deeper lists, null and error values) calls the run's own
`resolve` and `complete`, the one home of that logic; so does every failure: a field that
raises hands its error to `Run.fail` and the object's remaining fields to
`Run.object_fields`, the general walk.

The generated object completion answers `DONE`, `NULLED` (a failure nulled a position above
the object: stop, as the walk does) or the index of the field the general walk resumes at.
A value completion answers, as `Run.complete` does, whether a failure nulled a position
above the value.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any

from graphql import Undefined
from graphql.execution import Executor

from switchboard.execution.plan import (
    ATTR,
    EVENT,
    LEAF,
    RESOLVER,
    TYPENAME,
    FieldPlan,
    ObjectPlan,
    null_message,
)

DONE, NULLED = -1, -2
MIN_INT, MAX_INT = -(2**31), 2**31 - 1  # GraphQL's Int; graphql-core refuses others

ObjectCompletion = Callable[[Any, Any, dict[str, Any], Any, Any], int]
ValueCompletion = Callable[[Any, Any, Any, Any, Any, Any], bool]


def compile_object(plan: ObjectPlan) -> ObjectCompletion:
    """The completion function of `plan`'s fields (see the module's docstring); also makes
    the value completion of each of its fields that can have one."""
    names: dict[str, Any] = {
        "complete_leaf": Executor.complete_leaf_value,
        "Undefined": Undefined,
        "MIN_INT": MIN_INT,
        "MAX_INT": MAX_INT,
        "DONE": DONE,
        "NULLED": NULLED,
        "FIELDS": plan.fields,
        "TYPE_NAME": plan.type_name,
    }
    lines = ["def complete(run, source, out, path, anchor):", "    i = 0", "    try:"]
    for index, f in enumerate(plan.fields):
        key = repr(f.key)
        names[f"F{index}"] = f
        lines.append(f"        i = {index}")
        if f.complete_value is None:
            f.complete_value = compile_value(f)
        if f.kind == TYPENAME:
            lines.append(f"        out[{key}] = TYPE_NAME")
        elif f.kind == LEAF:
            lines += _leaf(index, f, key, names)
        elif f.kind == RESOLVER and _inline_relation(f):
            lines += _relation(index, f, key, names)
        elif f.kind == RESOLVER:
            lines.append(f"        if run.resolve(F{index}, source, out, (path, {key}), anchor):")
            lines.append("            return NULLED")
        elif f.kind in (ATTR, EVENT):
            value = "source" if f.kind == EVENT else _read(f.attr)
            if f.complete_value is not None:
                names[f"VALUE{index}"] = f.complete_value
                call = f"VALUE{index}(run, {value}, out, {key}, (path, {key}), anchor)"
            else:
                call = f"run.complete(F{index}, {value}, out, {key}, (path, {key}), anchor, 0)"
            lines.append(f"        if {call}:")
            lines.append("            return NULLED")
        else:  # a kind this compiler does not know: the general walk takes it from here
            lines.append(f"        return {index}")
    if not plan.fields:  # every field skipped (@skip / @include)
        lines.append("        pass")
    lines += [
        "    except Exception as error:",
        "        f = FIELDS[i]",
        "        if run.fail(f, error, out, f.key, (path, f.key), anchor, f.nullable[0]):",
        "            return NULLED",
        "        return i + 1",
        "    return DONE",
    ]
    return _define(lines, f"<completion of {plan.type_name}>", names)  # type: ignore[no-any-return]


def compile_value(f: FieldPlan) -> ValueCompletion | None:
    """The completion of `f`'s values, `(run, value, out, key, path, anchor) -> nulled
    above`, when they are objects of one type at most one list deep; else None."""
    plan = f.object
    if plan is None or f.list_depth > 1:
        return None
    if plan.complete is None:
        plan.complete = compile_object(plan)
    names: dict[str, Any] = {
        "F": f,
        "PLAN": plan,
        "OBJECT": plan.complete,
        "DONE": DONE,
        "NULLED": NULLED,
    }
    nullable = f.nullable[0]
    inner = "path" if nullable else "anchor"  # the anchor of what the value holds
    lines = ["def complete_value(run, value, out, key, path, anchor):"]
    if f.list_depth == 0:
        lines += [
            "    if value is None or isinstance(value, Exception):",
            "        return run.complete(F, value, out, key, path, anchor, 0)",
            "    child = {}",
            "    out[key] = child",
            f"    r = OBJECT(run, value, child, path, {inner})",
            "    if r == DONE:",
            "        return False",
            f"    if r == NULLED or run.object_fields(PLAN, value, child, path, {inner}, r):",
            f"        return {not nullable}",
            "    return False",
        ]
    else:
        item_anchor = "p" if f.nullable[1] else "inner"
        lines += [
            "    if value is None or isinstance(value, Exception) or type(value) is not list:",
            "        return run.complete(F, value, out, key, path, anchor, 0)",
            "    items = []",
            "    out[key] = items",
            f"    inner = {inner}",
            "    for index, item in enumerate(value):",
            "        p = (path, index)",
            "        if item is None or isinstance(item, Exception):",
            "            items.append(None)",
            "            if run.complete(F, item, items, index, p, inner, 1):",
            f"                return {not nullable}",
            "            continue",
            "        child = {}",
            "        items.append(child)",
            f"        r = OBJECT(run, item, child, p, {item_anchor})",
            "        if r != DONE and (",
            f"            r == NULLED or run.object_fields(PLAN, item, child, p, {item_anchor}, r)",
            "        ):",
        ]
        # A nulled nullable item is that item's own business; a non-null one nulls above.
        lines.append("            pass" if f.nullable[1] else f"            return {not nullable}")
        lines.append("    return False")
    return _define(lines, f"<values of {f.parent_type}.{f.name}>", names)  # type: ignore[no-any-return]


def _define(lines: list[str], filename: str, names: dict[str, Any]) -> Any:
    exec(compile("\n".join(lines), filename, "exec"), names)
    return names[lines[0].split()[1].split("(")[0]]


def _read(attr: str) -> str:
    if attr.isidentifier() and not keyword.iskeyword(attr):
        return f"source.{attr}"
    return f"getattr(source, {attr!r})"


def _leaf(index: int, f: FieldPlan, key: str, names: dict[str, Any]) -> list[str]:
    """A plain leaf field: null, its own serialization, or its serializer's."""
    names[f"LEAF{index}"] = f.leaf
    if f.nullable[0]:
        on_null = f"out[{key}] = None"
    else:
        names[f"NULL{index}"] = null_message(f)
        on_null = f"raise TypeError(NULL{index})"
    lines = [f"        v = {_read(f.attr)}", "        if v is None:", f"            {on_null}"]
    if f.fast is int:
        lines.append("        elif type(v) is int and MIN_INT <= v <= MAX_INT:")
        lines.append(f"            out[{key}] = v")
    elif f.fast is not None:
        names[f"FAST{index}"] = f.fast
        lines.append(f"        elif type(v) is FAST{index}:")
        lines.append(f"            out[{key}] = v")
    if f.memo is not None:
        names[f"MEMO{index}"] = f.memo
        lines += [
            "        else:",
            f"            s = MEMO{index}.get(v)",
            "            if s is None:",
            f"                s = MEMO{index}[v] = complete_leaf(LEAF{index}, v)",
            f"            out[{key}] = s",
        ]
    else:
        # The scalar's own serializer; graphql-core's call only for its error on a null.
        assert f.leaf is not None
        names[f"COERCE{index}"] = f.leaf.coerce_output_value
        lines += [
            "        else:",
            f"            s = COERCE{index}(v)",
            "            if s is None or s is Undefined:",
            f"                s = complete_leaf(LEAF{index}, v)",
            f"            out[{key}] = s",
        ]
    return lines


def _inline_relation(f: FieldPlan) -> bool:
    """A declared relation of an object (its key function takes the object and `info`)
    whose arguments were converted at planning and whose values are not cached apart."""
    return (
        f.loader is not None
        and f.pass_self
        and f.info_name is not None
        and f.kwargs is not None
        and not f.source_names
        and f.cache_group is None
    )


def _relation(index: int, f: FieldPlan, key: str, names: dict[str, Any]) -> list[str]:
    """`Run.resolve`'s work for a declared relation: the key function, then the key into
    the level's group of this field (or the field's null)."""
    names[f"KEY{index}"] = f.resolve
    arguments = f"source, {f.info_name}=run.info"
    if f.kwargs:
        names[f"KWARGS{index}"] = f.kwargs
        arguments += f", **KWARGS{index}"
    return [
        f"        k = KEY{index}({arguments})",
        "        if k is None:",
        f"            if run.complete(F{index}, None, out, {key}, (path, {key}), anchor, 0):",
        "                return NULLED",
        "        else:",
        f"            out[{key}] = None",
        f"            g = run.groups.get(F{index})",
        "            if g is None:",
        f"                g = run.group(F{index})",
        "            g.keys.append(k)",
        f"            g.places.append((out, (path, {key}), anchor))",
    ]
