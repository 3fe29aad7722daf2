"""The gateway's schema serves the contract: same names, types and nullability, every value."""

from __future__ import annotations

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    get_named_type,
    parse,
    validate,
)
from graphql.utilities.print_schema import print_input_value

from schema.core import core_schema
from schema.schema import schema
from tests.support.contract import CONTRACT_DIR, operation_files

CONTRACT = build_schema((CONTRACT_DIR / "schema.graphql").read_text())
OURS: GraphQLSchema = core_schema(schema)


def _reachable(root: GraphQLObjectType) -> dict[str, GraphQLNamedType]:
    """Every named type reachable from `root` through fields, arguments and interfaces."""
    seen: dict[str, GraphQLNamedType] = {}
    pending: list[GraphQLNamedType] = [root]
    while pending:
        named = pending.pop()
        if named.name in seen:
            continue
        seen[named.name] = named
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            pending.extend(named.interfaces)
            for field in named.fields.values():
                pending.append(get_named_type(field.type))
                pending.extend(get_named_type(arg.type) for arg in field.args.values())
            pending.extend(
                CONTRACT.get_possible_types(named)
                if isinstance(named, GraphQLInterfaceType)
                else []
            )
        elif isinstance(named, GraphQLInputObjectType):
            pending.extend(get_named_type(f.type) for f in named.fields.values())
    return seen


def _kind(named: GraphQLNamedType) -> str:
    kinds = (GraphQLObjectType, GraphQLInterfaceType, GraphQLEnumType, GraphQLInputObjectType)
    return next((kind.__name__ for kind in kinds if isinstance(named, kind)), "scalar")


@pytest.mark.parametrize("root", ["Query", "Mutation", "Subscription"])
def test_every_type_reachable_from_the_root_is_served_exactly(root: str) -> None:
    root_type = CONTRACT.get_type(root)
    assert isinstance(root_type, GraphQLObjectType)
    problems = []
    for name, expected in _reachable(root_type).items():
        actual = OURS.get_type(name)
        if actual is None or _kind(actual) != _kind(expected):
            problems.append(f"{name}: missing or of another kind")
            continue
        if isinstance(expected, GraphQLEnumType):
            assert isinstance(actual, GraphQLEnumType)
            missing = set(expected.values) - set(actual.values)
            if missing:
                problems.append(f"{name}: values {sorted(missing)} missing")
        if isinstance(expected, GraphQLObjectType | GraphQLInterfaceType):
            assert isinstance(actual, GraphQLObjectType | GraphQLInterfaceType)
            expected_interfaces = {i.name for i in expected.interfaces}
            if not expected_interfaces <= {i.name for i in actual.interfaces}:
                problems.append(f"{name}: interfaces differ")
            for field_name, field in expected.fields.items():
                ours = actual.fields.get(field_name)
                if ours is None or str(ours.type) != str(field.type):
                    problems.append(f"{name}.{field_name}: {ours and ours.type} != {field.type}")
                    continue
                for arg_name, arg in field.args.items():
                    our_arg = ours.args.get(arg_name)
                    if our_arg is None or str(our_arg.type) != str(arg.type):
                        problems.append(f"{name}.{field_name}({arg_name}) differs")
                    elif "=" in print_input_value(arg_name, arg) and print_input_value(
                        arg_name, arg
                    ) != print_input_value(arg_name, our_arg):
                        problems.append(f"{name}.{field_name}({arg_name}) default differs")
                extra_required = [
                    a
                    for a, v in ours.args.items()
                    if a not in field.args and str(v.type).endswith("!")
                ]
                if extra_required:
                    problems.append(f"{name}.{field_name}: extra required args {extra_required}")
    assert problems == []


def test_every_operation_the_clients_send_validates() -> None:
    paths = operation_files("dashboard", "mobile", "agent", "subscriptions")
    assert len(paths) >= 22
    for path in paths:
        assert validate(OURS, parse(path.read_text())) == [], path.name
