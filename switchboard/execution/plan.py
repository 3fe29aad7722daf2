"""The planner: an operation's fields, decided once, as a tree of `FieldPlan`s.

For one operation and the values of the variables its @skip/@include read, `Planner.plan`
collects the fields of every selection set with graphql-core's own `collect_fields` (so
fragments, aliases, merging and @skip/@include mean exactly what they mean there) and
decides, per field, everything the executor would otherwise work out per object: whether
it is a plain attribute, the Strawberry resolver to call (the one the schema declares,
never a copy; for a declared relation, its key function and loader) with its arguments
converted once when they hold no variable, the output type's list and null shape, the
leaf serializer, the child selection, and for an abstract type the child selection of
each possible object type.

What the planner does not cover raises `Unsupported` with a reason (the executor then
runs graphql-core and counts it): mutations and subscriptions, introspection, directives
other than @skip/@include, fragment variables, fields without a Strawberry definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    OperationType,
    get_named_type,
    is_abstract_type,
    is_enum_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values
from graphql.language import (
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
)
from strawberry.types.arguments import convert_arguments

from schema.core import core_schema
from schema.relations import RELATION
from switchboard.execution.response_cache import CACHED_FIELDS

# LEAF: a plain attribute of a leaf type; EVENT: a subscription field, whose value is the
# event the subscription delivers (the root value of its per-event execution).
ATTR, RESOLVER, TYPENAME, LEAF, EVENT = 0, 1, 2, 3, 4
BACKREF = "strawberry-definition"
CONDITIONS = frozenset({"skip", "include"})
EMPTY_VARIABLES = VariableValues({}, {})


class Unsupported(Exception):
    """The planner does not cover this operation; `reason` labels the fallback metric."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True, eq=False)
class ObjectPlan:
    type_name: str
    fields: tuple[FieldPlan, ...]
    # The generated completion of these fields (execution/compiled.py), made at first use.
    complete: Callable[..., int] | None = None


@dataclass(slots=True, eq=False)
class FieldPlan:
    key: str  # the response key (alias or name)
    name: str
    parent_type: str
    nodes: list[FieldNode]  # for error locations, as graphql-core reports them
    kind: int  # ATTR, LEAF, RESOLVER, TYPENAME or EVENT
    attr: str = ""  # the Python attribute of a plain field
    resolve: Callable[..., Any] | None = None
    pass_self: bool = False
    info_name: str | None = None
    source_names: tuple[str, ...] = ()  # `root` / `parent` parameters of the resolver
    kwargs: dict[str, Any] | None = None  # converted once; None: arguments read variables
    field_def: GraphQLField | None = None
    strawberry_field: Any = None
    # Nullability of the field's position, then of each list level's items.
    nullable: tuple[bool, ...] = (True,)
    list_depth: int = 0
    leaf: GraphQLLeafType | None = None
    fast: type | None = None  # a value of exactly this type is its own serialization
    memo: dict[Any, Any] | None = None  # an enum's serializations, shared by its fields
    object: ObjectPlan | None = None
    possible: dict[str, ObjectPlan] | None = None  # abstract types: plan per object type
    abstract_name: str = ""
    cache_group: str | None = None  # served through the response cache when it is on
    # A declared relation (schema/relations.py): `resolve` is its key function, and the
    # run loads the keys of all the level's objects from this loader in one call.
    loader: str | None = None
    # The generated completion of this field's values (execution/compiled.py), when they
    # are objects of one type, at most one list deep; made with its parent's completion.
    complete_value: Callable[..., bool] | None = None


def null_message(f: FieldPlan) -> str:
    """graphql-core's error for a null in `f`'s non-null position."""
    return f"Cannot return null for non-nullable field {f.parent_type}.{f.name}."


@dataclass(slots=True, eq=False)
class OperationPlan:
    root: ObjectPlan
    field_count: int
    size_bytes: int  # an estimate, for the plan cache's byte bound
    # What the operation reads of each object type (by GraphQL type name): the attributes
    # of its plain fields and the Python names of its resolver fields. The read side selects
    # only those columns (`Loaders.reads`, loaders/shapes.py).
    reads: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Shape:
    """What a document's operation needs before it can be planned: the variables its
    @skip/@include read (part of the plan's key), or why it cannot be."""

    condition_variables: tuple[str, ...]
    unsupported: str | None
    fragments: dict[str, FragmentDetails] = field(default_factory=dict)


# Rough bytes of one field plan with its nodes' share, for the cache's byte bound.
FIELD_PLAN_BYTES = 700


class Planner:
    def __init__(self, strawberry_schema: Any) -> None:
        self.schema: GraphQLSchema = core_schema(strawberry_schema)
        self.config = strawberry_schema.config
        self.scalar_registry = strawberry_schema.schema_converter.scalar_registry
        self.class_names: dict[type, str] = {}
        for named in self.schema.type_map.values():
            definition = (named.extensions or {}).get(BACKREF) if is_object_type(named) else None
            origin = getattr(definition, "origin", None)
            if origin is not None and not getattr(definition, "is_graphql_generic", False):
                self.class_names.setdefault(origin, named.name)
        self._enum_memos: dict[str, dict[Any, Any]] = {}

    # Shape

    def shape(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        events: bool = False,
    ) -> Shape:
        """`events`: a subscription's per-event execution is wanted (the live hub)."""
        wanted = OperationType.SUBSCRIPTION if events else OperationType.QUERY
        if operation.operation is not wanted:
            return Shape((), operation.operation.value)
        fragments: dict[str, FragmentDetails] = {}
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                if definition.variable_definitions:
                    return Shape((), "fragment_variables")
                fragments[definition.name.value] = FragmentDetails(definition, None)
        if operation.directives:
            return Shape((), "directive")
        found: list[str] = []
        try:
            _scan(operation.selection_set, fragments, found, set())
        except Unsupported as unsupported:
            return Shape((), unsupported.reason)
        return Shape(tuple(dict.fromkeys(found)), None, fragments)

    # Plan

    def plan(
        self,
        operation: OperationDefinitionNode,
        shape: Shape,
        variables: VariableValues,
    ) -> OperationPlan:
        root_type = (
            self.schema.subscription_type
            if operation.operation is OperationType.SUBSCRIPTION
            else self.schema.query_type
        )
        assert root_type is not None
        collected = collect_fields(self.schema, shape.fragments, variables, root_type, operation)
        counter = [0]
        root = self._object(
            root_type, collected.grouped_field_set, operation, shape, variables, counter
        )
        return OperationPlan(root, counter[0], counter[0] * FIELD_PLAN_BYTES, _reads(root))

    def _object(
        self,
        parent: GraphQLObjectType,
        grouped: dict[str, list[FieldDetails]],
        operation: OperationDefinitionNode,
        shape: Shape,
        variables: VariableValues,
        counter: list[int],
    ) -> ObjectPlan:
        fields = []
        for key, details in grouped.items():
            counter[0] += 1
            fields.append(self._field(parent, key, details, operation, shape, variables, counter))
        return ObjectPlan(parent.name, tuple(fields))

    def _field(
        self,
        parent: GraphQLObjectType,
        key: str,
        details: list[FieldDetails],
        operation: OperationDefinitionNode,
        shape: Shape,
        variables: VariableValues,
        counter: list[int],
    ) -> FieldPlan:
        node = details[0].node
        name = node.name.value
        nodes = [d.node for d in details]
        if name == "__typename":
            return FieldPlan(key, name, parent.name, nodes, TYPENAME)
        if name.startswith("__"):
            raise Unsupported("introspection")
        field_def = parent.fields.get(name)
        definition = (field_def.extensions or {}).get(BACKREF) if field_def else None
        if field_def is None or definition is None or field_def.resolve is None:
            raise Unsupported("field")
        plan = FieldPlan(key, name, parent.name, nodes, ATTR, field_def=field_def)
        plan.strawberry_field = definition
        plan.cache_group = CACHED_FIELDS.get((parent.name, name))
        resolver = definition.base_resolver
        if definition.is_subscription:
            plan.kind = EVENT
        elif resolver is None:
            if definition.extensions:
                raise Unsupported("field")
            plan.attr = definition.python_name
        else:
            if definition.extensions:
                raise Unsupported("field")
            plan.kind = RESOLVER
            plan.resolve = resolver.wrapped_func
            declared = getattr(plan.resolve, RELATION, None)
            if declared is not None:
                plan.resolve, plan.loader = declared.key, declared.loader
            plan.pass_self = resolver.self_parameter is not None
            plan.info_name = resolver.info_parameter.name if resolver.info_parameter else None
            plan.source_names = tuple(
                p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p
            )
            if not _reads_variables(node):
                try:
                    plan.kwargs = self.convert(plan, get_argument_values(field_def, node))
                except Exception:  # reported per object at run time, as graphql-core does
                    plan.kwargs = None
        self._output(plan, field_def, details, operation, shape, variables, counter)
        if plan.kind == ATTR and plan.leaf is not None and not plan.list_depth:
            plan.kind = LEAF
        return plan

    def convert(self, plan: FieldPlan, arguments: dict[str, Any]) -> dict[str, Any]:
        """GraphQL argument values as the resolver's keyword arguments (Strawberry's
        own conversion: Python names, input types, enums)."""
        return convert_arguments(
            arguments,
            plan.strawberry_field.arguments,
            scalar_registry=self.scalar_registry,
            config=self.config,
        )

    def _output(
        self,
        plan: FieldPlan,
        field_def: GraphQLField,
        details: list[FieldDetails],
        operation: OperationDefinitionNode,
        shape: Shape,
        variables: VariableValues,
        counter: list[int],
    ) -> None:
        nullable = []
        output: Any = field_def.type
        while True:
            if is_non_null_type(output):
                nullable.append(False)
                output = output.of_type
            else:
                nullable.append(True)
            if is_list_type(output):
                plan.list_depth += 1
                output = output.of_type
                continue
            break
        plan.nullable = tuple(nullable)
        named = get_named_type(output)
        if is_leaf_type(named):
            plan.leaf = named  # type: ignore[assignment]
            if named is GraphQLString or named is GraphQLID:
                plan.fast = str
            elif named is GraphQLBoolean:
                plan.fast = bool
            elif named is GraphQLInt:
                plan.fast = int  # within 32 bits: the run checks
            elif is_enum_type(named):
                plan.memo = self._enum_memos.setdefault(named.name, {})
            return
        if is_object_type(named):
            sub = collect_subfields(
                self.schema, shape.fragments, variables, operation, named, details
            )
            plan.object = self._object(
                named, sub.grouped_field_set, operation, shape, variables, counter
            )
            return
        if is_abstract_type(named):
            plan.abstract_name = named.name
            plan.possible = {}
            for possible in self.schema.get_possible_types(named):  # type: ignore[arg-type]
                sub = collect_subfields(
                    self.schema, shape.fragments, variables, operation, possible, details
                )
                plan.possible[possible.name] = self._object(
                    possible, sub.grouped_field_set, operation, shape, variables, counter
                )
            return
        raise Unsupported("type")


def _reads(root: ObjectPlan) -> dict[str, frozenset[str]]:
    """What the plan reads of each object type anywhere: its plain fields' attributes and
    its resolver fields' Python names."""
    found: dict[str, set[str]] = {}
    todo = [root]
    while todo:
        plan = todo.pop()
        attrs = found.setdefault(plan.type_name, set())
        for f in plan.fields:
            if f.attr:
                attrs.add(f.attr)
            elif f.kind == RESOLVER:
                attrs.add(f.strawberry_field.python_name)
            if f.object is not None:
                todo.append(f.object)
            todo.extend((f.possible or {}).values())
    return {name: frozenset(attrs) for name, attrs in found.items()}


def _scan(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDetails],
    found: list[str],
    seen: set[str],
) -> None:
    """Collect the variables @skip/@include read; refuse any other directive."""
    if selection_set is None:
        return
    for selection in selection_set.selections:
        _directives(selection.directives, found)
        if isinstance(selection, FieldNode | InlineFragmentNode):
            _scan(selection.selection_set, fragments, found, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in seen and name in fragments:
                seen.add(name)
                definition = fragments[name].definition
                _directives(definition.directives, found)
                _scan(definition.selection_set, fragments, found, seen)


def _directives(directives: tuple[DirectiveNode, ...] | None, found: list[str]) -> None:
    for directive in directives or ():
        if directive.name.value not in CONDITIONS:
            raise Unsupported("directive")
        for argument in directive.arguments or ():
            _variables_in(argument.value, found)


def _variables_in(value: ValueNode, found: list[str]) -> None:
    if isinstance(value, VariableNode):
        found.append(value.name.value)
    elif isinstance(value, ListValueNode):
        for item in value.values:
            _variables_in(item, found)
    elif isinstance(value, ObjectValueNode):
        for item in value.fields:
            _variables_in(item.value, found)


def _reads_variables(node: FieldNode) -> bool:
    found: list[str] = []
    for argument in node.arguments or ():
        _variables_in(argument.value, found)
    return bool(found)
