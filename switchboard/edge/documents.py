"""Parsed and validated GraphQL documents, cached per process by their text.

Parsing and validating a dashboard operation costs milliseconds (about 6 ms for
DashboardOverview); the clients send the same few documents again and again, so each
distinct text is parsed and validated once. Invalid documents are cached too (with their
errors), so a client repeating a bad document costs nothing either.

Along with each valid document the cache keeps the analysis of its operations for the
operation limits (`switchboard.edge.limits`): a cached document is never parsed,
validated or analysed again. Documents of the persisted-query manifests are `pin`ned at
start: they are prepared before the first request and never evicted, so a persisted
operation is never parsed or validated while serving. `parsed`, `validated` and
`prepare_seconds` count the work done, for tests and the Server-Timing header.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule

from switchboard.edge.limits import (
    OperationAnalysis,
    OperationLimits,
    analyze,
    is_token_limit_error,
    tokens_exceeded_message,
)

MAX_CACHED_DOCUMENTS = 2000


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    document: DocumentNode | None
    parse_errors: list[GraphQLError]
    validation_errors: list[GraphQLError]
    # Set when the document is past a limit found while parsing (its token count).
    too_complex: str | None = None
    analyses: tuple[tuple[OperationDefinitionNode, OperationAnalysis], ...] = ()
    # sha256 of the text: names the document in response-cache keys.
    sha256: str = field(default="")

    def operation(self, operation_name: str | None) -> OperationDefinitionNode | None:
        assert self.document is not None
        return get_operation_ast(self.document, operation_name)

    def analysis(self, operation: OperationDefinitionNode) -> OperationAnalysis | None:
        for node, analysis in self.analyses:
            if node is operation:
                return analysis
        return None


class DocumentCache:
    def __init__(
        self,
        schema: GraphQLSchema,
        size: int = MAX_CACHED_DOCUMENTS,
        limits: OperationLimits | None = None,
        introspection: bool = True,
    ) -> None:
        self.schema = schema
        self.size = size
        self.limits = limits or OperationLimits()
        # Without introspection, errors do not suggest names of the schema either.
        self.introspection = introspection
        self.rules = (
            specified_rules
            if introspection
            else (*specified_rules, NoSchemaIntrospectionCustomRule)
        )
        self._documents: OrderedDict[str, PreparedDocument] = OrderedDict()
        self._pinned: dict[str, PreparedDocument] = {}
        self.parsed = 0
        self.validated = 0
        self.prepare_seconds = 0.0

    def get(self, text: str) -> PreparedDocument:
        prepared = self._pinned.get(text)
        if prepared is not None:
            return prepared
        prepared = self._documents.get(text)
        if prepared is not None:
            self._documents.move_to_end(text)
            return prepared
        prepared = self._prepare(text)
        self._documents[text] = prepared
        if len(self._documents) > self.size:
            self._documents.popitem(last=False)
        return prepared

    def pin(self, text: str) -> PreparedDocument:
        """Prepare `text` now and keep it for the life of the process."""
        prepared = self._pinned.get(text)
        if prepared is None:
            prepared = self._documents.pop(text, None) or self._prepare(text)
            self._pinned[text] = prepared
        return prepared

    def _prepare(self, text: str) -> PreparedDocument:
        started = time.perf_counter()
        try:
            return self._parse_and_validate(text)
        finally:
            self.prepare_seconds += time.perf_counter() - started

    def _parse_and_validate(self, text: str) -> PreparedDocument:
        sha = hashlib.sha256(text.encode()).hexdigest()
        self.parsed += 1
        try:
            document = parse(text, max_tokens=self.limits.max_tokens)
        except GraphQLError as error:
            if is_token_limit_error(error.message):
                message = tokens_exceeded_message(self.limits)
                return PreparedDocument(None, [], [], too_complex=message, sha256=sha)
            return PreparedDocument(None, [error], [], sha256=sha)
        except RecursionError:
            message = "The document is nested too deeply."
            return PreparedDocument(None, [], [], too_complex=message, sha256=sha)
        self.validated += 1
        errors = validate(
            self.schema, document, self.rules, hide_suggestions=not self.introspection
        )
        if errors:
            return PreparedDocument(document, [], errors, sha256=sha)
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        analyses = tuple(
            (d, analyze(self.schema, fragments, d, self.limits))
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
        )
        return PreparedDocument(document, [], [], analyses=analyses, sha256=sha)
