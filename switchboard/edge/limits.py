"""Operation limits: how deep, how aliased, how long and how costly an operation may be.

Each operation of a document is analysed once, when the document is parsed and validated
(`switchboard.edge.documents` keeps the analysis with the document); each request then only
evaluates the cost against its own variables and compares four numbers. Past any limit
the request answers QUERY_TOO_COMPLEX (HTTP 400) before a resolver runs.

- tokens: lexical tokens of the document; enforced by the parser itself (it stops
  reading at the limit, so a huge document costs nothing more);
- depth: the deepest nesting of fields (fragments add no depth of their own);
- aliases: aliased fields, counted as often as their fragments are spread;
- cost: an estimate of the number of fields in the response. Every field counts 1, times
  the size of each list it sits in: a field taking `first` (a connection, or a list such
  as skillSearch) multiplies what it holds by `first` (its literal, the variable's value,
  the variable's default, then the argument's default; at most MAX_FIRST); the `edges`
  list of a connection adds no factor of its own; any other list counts as
  `LIST_SIZE_GUESSES` says, or `default_list_size`.

Fragments are analysed once each (memoised), so a document of fragments spreading each
other many times is analysed in linear time and its cost comes out as large as its
response would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_list_type,
    is_non_null_type,
)
from graphql.type.definition import GraphQLNamedType

from domain.pagination import MAX_FIRST

TOO_COMPLEX = "QUERY_TOO_COMPLEX"
# Lists whose length the schema fixes or the contract bounds.
LIST_SIZE_GUESSES = {
    "Tenant.agents": 7,
    "MobileHome.urgentApprovals": 5,
    "MobileHome.recentActivities": 10,
    "Viewer.memberships": 1,
}
DEFAULT_FIRST = 20

# A cost polynomial: {sorted names of the `first` variables multiplied in: coefficient}.
Polynomial = dict[tuple[str, ...], int]


@dataclass(frozen=True, slots=True)
class OperationLimits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 3000
    max_cost: int = 100_000
    default_list_size: int = 10


@dataclass(frozen=True, slots=True)
class OperationAnalysis:
    """What an operation costs, computed once; `cost(variables)` is a few multiplications."""

    depth: int
    aliases: int
    polynomial: tuple[tuple[tuple[str, ...], int], ...]
    # variable name → its default in the operation (when an int) or the argument's default
    defaults: tuple[tuple[str, int], ...]

    def cost(self, variables: Mapping[str, Any] | None) -> int:
        values = dict(self.defaults)
        if variables:
            for name in values:
                given = variables.get(name)
                if isinstance(given, int) and not isinstance(given, bool):
                    values[name] = min(max(given, 0), MAX_FIRST)
        total = 0
        for names, coefficient in self.polynomial:
            for name in names:
                coefficient *= values[name]
            total += coefficient
        return total

    def violation(self, variables: Mapping[str, Any] | None, limits: OperationLimits) -> str | None:
        """The message for the first limit this request exceeds, or None."""
        if self.depth > limits.max_depth:
            return f"The operation nests fields deeper than {limits.max_depth}."
        if self.aliases > limits.max_aliases:
            return f"The operation has {self.aliases} aliases; the limit is {limits.max_aliases}."
        cost = self.cost(variables)
        if cost > limits.max_cost:
            return (
                f"The operation's estimated cost is {cost} fields; the limit is "
                f"{limits.max_cost}. Ask for fewer items (`first`) or fewer fields."
            )
        return None


def tokens_exceeded_message(limits: OperationLimits) -> str:
    return f"The document has more than {limits.max_tokens} tokens."


def is_token_limit_error(message: str) -> bool:
    # graphql-core: "Syntax Error: Document contains more than N tokens. Parsing aborted."
    return "Document contains more than" in message and "tokens" in message


def analyze(
    schema: GraphQLSchema,
    fragments: Mapping[str, FragmentDefinitionNode],
    operation: OperationDefinitionNode,
    limits: OperationLimits,
) -> OperationAnalysis:
    """The analysis of one operation of a document that validated against `schema`."""
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    walker = _Walker(schema, fragments, limits, _operation_defaults(operation))
    depth, aliases, polynomial = walker.selection_set(operation.selection_set, root, False, 0)
    return OperationAnalysis(
        depth=depth,
        aliases=aliases,
        polynomial=tuple(sorted(polynomial.items())),
        defaults=tuple(sorted(walker.variable_defaults.items())),
    )


def _operation_defaults(operation: OperationDefinitionNode) -> dict[str, int | None]:
    defaults: dict[str, int | None] = {}
    for definition in operation.variable_definitions or ():
        value = definition.default_value
        defaults[definition.variable.name.value] = (
            int(value.value) if isinstance(value, IntValueNode) else None
        )
    return defaults


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        limits: OperationLimits,
        operation_defaults: dict[str, int | None],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.limits = limits
        self.operation_defaults = operation_defaults
        self.variable_defaults: dict[str, int] = {}
        self._memo: dict[tuple[str, bool], tuple[int, int, Polynomial]] = {}
        self._visiting: set[str] = set()

    def selection_set(
        self, selection_set: SelectionSetNode, parent: Any, in_page: bool, level: int
    ) -> tuple[int, int, Polynomial]:
        """(depth, aliases, cost polynomial) of a selection set `level` fields deep.

        Past the depth limit it stops descending: the operation is refused for its depth
        whatever lies below, and the walk stays shallow however deep the document is.
        """
        if level > self.limits.max_depth:
            return 1, 0, {(): 1}
        depth, aliases, polynomial = 0, 0, {}
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                d, a, p = self.field(selection, parent, in_page, level)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                d, a, p = self.selection_set(selection.selection_set, inner, in_page, level)
            elif isinstance(selection, FragmentSpreadNode):
                d, a, p = self.fragment(selection.name.value, in_page, level)
            else:  # pragma: no cover - no other selection kinds exist
                continue
            depth = max(depth, d)
            aliases += a
            _add(polynomial, p)
        return depth, aliases, polynomial

    def fragment(self, name: str, in_page: bool, level: int) -> tuple[int, int, Polynomial]:
        key = (name, in_page)
        if key in self._memo:
            return self._memo[key]
        definition = self.fragments.get(name)
        if definition is None or name in self._visiting:  # validation refuses both
            return 0, 0, {}
        self._visiting.add(name)
        parent = self.schema.get_type(definition.type_condition.name.value)
        result = self.selection_set(definition.selection_set, parent, in_page, level)
        self._visiting.discard(name)
        self._memo[key] = result
        return result

    def field(
        self, node: FieldNode, parent: Any, in_page: bool, level: int
    ) -> tuple[int, int, Polynomial]:
        aliases = 1 if node.alias is not None else 0
        name = node.name.value
        fields = getattr(parent, "fields", None) or {}
        definition = fields.get(name)
        if definition is None or node.selection_set is None:
            return 1, aliases, {(): 1}  # a leaf, __typename or an introspection field
        field_type = definition.type
        named: GraphQLNamedType = get_named_type(field_type)
        nullable = field_type.of_type if is_non_null_type(field_type) else field_type
        is_list = is_list_type(nullable)
        coefficient, variable = 1, None
        child_in_page = False
        if "first" in definition.args:
            coefficient, variable = self._first(node, definition.args["first"])
            child_in_page = not is_list  # a connection: its `edges` list is the page
        elif is_list:
            if in_page and name == "edges":
                coefficient = 1
            else:
                guess = LIST_SIZE_GUESSES.get(f"{getattr(parent, 'name', '')}.{name}")
                coefficient = guess if guess is not None else self.limits.default_list_size
        depth, aliases_below, below = self.selection_set(
            node.selection_set, named, child_in_page, level + 1
        )
        polynomial: Polynomial = {(): 1}
        for names, value in below.items():
            scaled = tuple(sorted((*names, variable))) if variable else names
            polynomial[scaled] = polynomial.get(scaled, 0) + value * coefficient
        return depth + 1, aliases + aliases_below, polynomial

    def _first(self, node: FieldNode, argument: Any) -> tuple[int, str | None]:
        """(constant factor, variable factor) of a field's `first`."""
        default = argument.default_value if isinstance(argument.default_value, int) else None
        fallback = default if default is not None else DEFAULT_FIRST
        for arg in node.arguments or ():
            if arg.name.value != "first":
                continue
            value = arg.value
            if isinstance(value, IntValueNode):
                return _clamp(int(value.value)), None
            if isinstance(value, VariableNode):
                name = value.name.value
                declared = self.operation_defaults.get(name)
                self.variable_defaults[name] = _clamp(
                    declared if declared is not None else fallback
                )
                return 1, name
            if isinstance(value, NullValueNode):
                return _clamp(fallback), None
        return _clamp(fallback), None


def _clamp(value: int) -> int:
    return min(max(value, 0), MAX_FIRST)


def _add(into: Polynomial, other: Polynomial) -> None:
    for names, value in other.items():
        into[names] = into.get(names, 0) + value
