"""Hypothesis strategy: valid query operations drawn from the schema.

Random selections of each type's fields, aliases, `__typename`, inline fragments on the
`Node` interface (and on its object types), named fragments, @skip/@include with literals
and with variables, and arguments at their limits (`first` of 0, 1, 100, 101, -1; cursors
that do not decode; IDs of every kind, of no kind and of nothing). `skillSearch` is left
out (the contract's SkillSearch covers it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    is_leaf_type,
    is_non_null_type,
)
from hypothesis import strategies as st

MAX_DEPTH = 4
FIRST = ("0", "1", "2", "20", "100", "101", "-1")
AFTER = ('"nope"', '"YWZ0ZXI="', "null")
DATES = ('"2026-08-01T00:00:00Z"', '"2026-12-01T00:00:00Z"', '"2026-11-15T12:30:00+02:00"')
LEFT_OUT = {("Query", "skillSearch")}
CONDITIONS = (
    "@skip(if: $skip)",
    "@include(if: $include)",
    "@include(if: true)",
    "@skip(if: false)",
)


@dataclass
class Drawn:
    """What one operation's drawing collects besides its selection."""

    ids: tuple[str, ...]
    fragments: list[str] = field(default_factory=list)
    variables: set[str] = field(default_factory=set)
    counter: int = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


def operations(
    schema: GraphQLSchema, ids: tuple[str, ...]
) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """(query text, variables)."""

    @st.composite
    def operation(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
        drawn = Drawn(ids)
        query = schema.query_type
        assert query is not None
        body = _selection(draw, schema, query, 0, drawn)
        declared = "".join(f"${v}: Boolean!, " for v in sorted(drawn.variables)).rstrip(", ")
        head = f"query Generated({declared})" if declared else "query Generated"
        text = "\n".join([f"{head} {body}", *drawn.fragments])
        variables = {v: draw(st.booleans()) for v in sorted(drawn.variables)}
        return text, variables

    return operation()


def _selection(
    draw: st.DrawFn,
    schema: GraphQLSchema,
    parent: GraphQLObjectType | GraphQLInterfaceType,
    depth: int,
    drawn: Drawn,
) -> str:
    names = sorted(n for n in parent.fields if (parent.name, n) not in LEFT_OUT)
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    parts = []
    if draw(st.integers(0, 4)) == 0:
        parts.append("__typename")
    for name in chosen:
        definition = parent.fields[name]
        named = get_named_type(definition.type)
        if not is_leaf_type(named) and depth >= MAX_DEPTH:
            continue
        text = name
        if draw(st.integers(0, 3)) == 0:
            text = f"{drawn.name('alias')}: {name}"
        arguments = _arguments(draw, definition.args, drawn)
        if arguments:
            text += f"({arguments})"
        if draw(st.integers(0, 5)) == 0:
            condition = draw(st.sampled_from(CONDITIONS))
            if "$skip" in condition:
                drawn.variables.add("skip")
            if "$include" in condition:
                drawn.variables.add("include")
            text += f" {condition}"
        if not is_leaf_type(named):
            text += " " + _sub_selection(draw, schema, named, depth + 1, drawn)
        parts.append(text)
    if not parts:
        parts.append("__typename")
    if depth and draw(st.integers(0, 5)) == 0 and isinstance(parent, GraphQLObjectType):
        fragment = drawn.name("Fragment")
        drawn.fragments.append(f"fragment {fragment} on {parent.name} {{ {' '.join(parts)} }}")
        parts = [f"...{fragment}"]
    return "{ " + " ".join(parts) + " }"


def _sub_selection(
    draw: st.DrawFn, schema: GraphQLSchema, named: Any, depth: int, drawn: Drawn
) -> str:
    if isinstance(named, GraphQLInterfaceType):
        parts = [_selection(draw, schema, named, depth, drawn)[2:-2]]
        possible = sorted(schema.get_possible_types(named), key=lambda t: t.name)
        for concrete in draw(st.lists(st.sampled_from(possible), max_size=3, unique=True)):
            parts.append(
                f"... on {concrete.name} {_selection(draw, schema, concrete, depth, drawn)}"
            )
        if draw(st.booleans()):
            parts.append(f"... on {named.name} {{ __typename }}")
        return "{ " + " ".join(parts) + " }"
    return _selection(draw, schema, named, depth, drawn)


def _arguments(draw: st.DrawFn, args: dict[str, Any], drawn: Drawn) -> str:
    rendered = []
    for name, argument in args.items():
        required = is_non_null_type(argument.type) and argument.default_value is None
        if not required and draw(st.booleans()):
            continue
        value = _value(draw, name, get_named_type(argument.type), drawn)
        if value is not None:
            rendered.append(f"{name}: {value}")
    return ", ".join(rendered)


def _value(draw: st.DrawFn, name: str, named: Any, drawn: Drawn) -> str | None:
    if isinstance(named, GraphQLEnumType):
        return draw(st.sampled_from(sorted(named.values)))
    if named.name == "Int":
        return draw(st.sampled_from(FIRST))
    if named.name == "ID":
        return '"' + draw(st.sampled_from(drawn.ids)) + '"'
    if named.name == "DateTime":
        return draw(st.sampled_from(DATES))
    if named.name == "String":
        return draw(st.sampled_from(AFTER))
    return None
