"""Parsed and validated GraphQL documents, cached per process by their text.

Parsing and validating a dashboard operation costs milliseconds (see
../shared/notes/performance-facts.md); the clients send the same few documents again and
again, so each distinct text is parsed and validated once. Invalid documents are cached too
(with their errors), so a client repeating a bad document costs nothing either.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    get_operation_ast,
    parse,
    validate,
)

MAX_CACHED_DOCUMENTS = 2000


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    document: DocumentNode | None
    parse_errors: list[GraphQLError]
    validation_errors: list[GraphQLError]

    def operation(self, operation_name: str | None) -> OperationDefinitionNode | None:
        assert self.document is not None
        return get_operation_ast(self.document, operation_name)


class DocumentCache:
    def __init__(self, schema: GraphQLSchema, size: int = MAX_CACHED_DOCUMENTS) -> None:
        self.schema = schema
        self.size = size
        self._documents: OrderedDict[str, PreparedDocument] = OrderedDict()

    def get(self, text: str) -> PreparedDocument:
        prepared = self._documents.get(text)
        if prepared is not None:
            self._documents.move_to_end(text)
            return prepared
        prepared = self._prepare(text)
        self._documents[text] = prepared
        if len(self._documents) > self.size:
            self._documents.popitem(last=False)
        return prepared

    def _prepare(self, text: str) -> PreparedDocument:
        try:
            document = parse(text)
        except GraphQLError as error:
            return PreparedDocument(None, [error], [])
        return PreparedDocument(document, [], validate(self.schema, document))
