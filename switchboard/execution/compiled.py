"""Per-object completion code, generated once per `ObjectPlan` (as graphql-jit compiles).

`Run.object` completes an object by walking its plan's fields and asking each `FieldPlan`
what it is. The function generated here does the same walk unrolled: one straight block
per field with its response key, attribute, serializer and null shape as constants, so a
plain field costs an attribute read, a type check and a store. Fields that are not plain
(resolvers, child objects and lists) call the run's own `resolve` and `complete`, the one
home of that logic; so does every failure: a field that raises hands its error to
`Run.fail` and the object's remaining fields to `Run.object_fields`, the general walk.

The generated function answers `DONE`, `NULLED` (a failure nulled a position above the
object: stop, as the walk does) or the index of the field the general walk resumes at.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any

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


def compile_object(plan: ObjectPlan) -> ObjectCompletion:
    """The completion function of `plan`'s fields (see the module's docstring)."""
    names: dict[str, Any] = {
        "complete_leaf": Executor.complete_leaf_value,
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
        if f.kind == TYPENAME:
            lines.append(f"        out[{key}] = TYPE_NAME")
        elif f.kind == LEAF:
            lines += _leaf(index, f, key, names)
        elif f.kind == RESOLVER:
            lines.append(f"        if run.resolve(F{index}, source, out, (path, {key}), anchor):")
            lines.append("            return NULLED")
        elif f.kind in (ATTR, EVENT):
            value = "source" if f.kind == EVENT else _read(f.attr)
            lines.append(
                f"        if run.complete(F{index}, {value}, out, {key}, (path, {key}), anchor, 0):"
            )
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
    exec(compile("\n".join(lines), f"<completion of {plan.type_name}>", "exec"), names)
    return names["complete"]  # type: ignore[no-any-return]


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
        lines += ["        else:", f"            out[{key}] = complete_leaf(LEAF{index}, v)"]
    return lines
