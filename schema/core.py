"""The graphql-core schema behind a Strawberry schema, through one named accessor: Strawberry
keeps it as the private `_schema`, and this is the only place that knows."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLSchema


def core_schema(schema: Any) -> GraphQLSchema:
    """The graphql-core schema of a Strawberry schema (or that schema itself)."""
    found = getattr(schema, "_schema", schema)
    if not isinstance(found, GraphQLSchema):
        raise TypeError(f"not a GraphQL schema: {type(schema).__name__}")
    return found
