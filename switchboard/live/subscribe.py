"""Starting a subscription on the hub, the same way for every transport.

Websocket, SSE (both modes) and multipart hand their subscription's request and principal
here: admission (`edge/admission.py`: rate limit, persisted and trusted documents, the
document cache, limits), the operation must be a subscription, its variables and arguments
are coerced and its resolver answers a `Feed`, then the subscriber joins its hub group.
Subscribers of the same document, variables (apart from the root field's own arguments),
tenant and kind of principal share one group, so one execution per event, whatever
transport each of them came by. A refusal is `CannotSubscribe`, with the contract's error
codes and the HTTP status the transport may answer with.

`resume` is a position from the transport (SSE's `Last-Event-ID`) that takes the place of
the operation's `after`: it must be an event of the subscription's log (an unknown one is
refused), and one older than the log's 24 hours is refused as `after` is.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    Visitor,
    visit,
)
from graphql.execution import Executor, create_source_event_stream

from domain.access import Principal
from domain.events import Position
from resolvers.context import RequestContext
from resolvers.subscriptions import Feed
from schema.core import core_schema
from switchboard.edge.admission import (
    Admitted,
    GraphQLRequest,
    NotExecuted,
    RequestError,
    graphql_request,
)
from switchboard.edge.http import GraphQLEndpoint, format_error
from switchboard.live import log as event_log
from switchboard.live.hub import Group, Hub, Outbox, ReplayGap, Subscriber, stream_of
from switchboard.observability import live as observed

MAX_DOCUMENTS = 1000
GAP_MESSAGE = (
    "`after` is older than the 24-hour event log: subscribe without it and reload what the "
    "view shows."
)


class CannotSubscribe(Exception):
    """The subscription does not start: `errors` in the contract's format, and the HTTP
    status a transport that answers over HTTP uses (before any stream opens)."""

    def __init__(self, errors: list[dict[str, Any]], status: int = 400) -> None:
        super().__init__(errors[0]["message"] if errors else "")
        self.errors = errors
        self.status = status
        self.headers: dict[str, str] = {}


def refusal(code: str, message: str, status: int = 400) -> CannotSubscribe:
    return CannotSubscribe([{"message": message, "extensions": {"code": code}}], status)


def from_request_error(error: RequestError) -> CannotSubscribe:
    refused = CannotSubscribe(error.errors(), error.status)
    refused.headers = error.headers
    return refused


def only_subscriptions(admitted: Admitted) -> None:
    if admitted.operation.operation is not OperationType.SUBSCRIPTION:
        raise RequestError(
            400, "BAD_REQUEST", "Send queries and mutations over HTTP; only subscriptions here."
        )


@dataclass(frozen=True, slots=True)
class Ready:
    """An admitted subscription, about to join its hub group."""

    principal: Principal
    feed: Feed
    executor: Executor
    name: str | None
    group_key: Hashable


class LiveSubscriptions:
    """The live path of one gateway process: admission, then the hub."""

    def __init__(self, graphql: GraphQLEndpoint, hub: Hub) -> None:
        self.graphql = graphql
        self.admission = graphql.admission
        self.settings = graphql.settings
        self.services = graphql.services
        self.hub = hub
        self.schema = core_schema(graphql.schema)
        self._render_variables: dict[tuple[str, str | None], frozenset[str]] = {}

    def request(self, payload: dict[str, Any]) -> GraphQLRequest:
        """A subscription's parameters from a JSON object (a message, a body, a query)."""
        try:
            return graphql_request(
                payload.get("query"),
                payload.get("variables"),
                payload.get("operationName"),
                payload.get("extensions"),
                self.settings,
            )
        except RequestError as error:
            raise from_request_error(error) from None
        except NotExecuted as failure:
            raise CannotSubscribe(failure.payload["errors"]) from None

    async def start(
        self,
        principal: Principal,
        request: GraphQLRequest,
        outbox: Outbox,
        subscription_id: str,
        resume: Position | None = None,
        transport: str = "websocket",
    ) -> Subscriber:
        """Rate limit, admit, and join the hub group; the subscriber is returned once its
        replay (if any) has been handed to the outbox."""
        try:
            await self.admission.rate_limit(principal)
        except RequestError as error:
            raise from_request_error(error) from None
        ready = await self.prepare(principal, request, resume, transport)
        return await self.join(ready, outbox, subscription_id)

    async def prepare(
        self,
        principal: Principal,
        request: GraphQLRequest,
        resume: Position | None = None,
        transport: str = "websocket",
    ) -> Ready:
        """Admission, the subscription's feed and its group; nothing held yet (a transport
        that must answer before its stream opens rate limits first, then calls this)."""
        try:
            admitted = await self.admission.admit(request, principal, only_subscriptions)
        except RequestError as error:
            raise from_request_error(error) from None
        except NotExecuted as failure:
            raise CannotSubscribe(failure.payload["errors"]) from None
        prepared, name = admitted.prepared, admitted.name
        feed, executor = await self._source(principal, prepared.document, request.variables, name)
        if resume is not None:
            if event_log.beyond_retention(resume, int(time.time() * 1000)):
                raise refusal("BAD_USER_INPUT", GAP_MESSAGE)
            if resume != (0, 0) and not await self._known(stream_of(feed), resume):
                raise refusal(
                    "BAD_USER_INPUT",
                    "`Last-Event-ID` is not an event of this subscription: subscribe without it "
                    "(or with `after`) and reload what the view shows.",
                )
            feed = dataclasses.replace(feed, after=resume)
        if feed.after is not None:
            if event_log.beyond_retention(feed.after, int(time.time() * 1000)):
                raise refusal("BAD_USER_INPUT", GAP_MESSAGE)
            observed.resumed(transport)
        rendering = self.rendering_variables(prepared.sha256, prepared.document, name)
        group_key: Hashable = (
            stream_of(feed),
            prepared.sha256,
            name,
            ("agent", principal.subject_id) if principal.is_agent else ("user", principal.role),
            orjson.dumps(
                {k: v for k, v in (request.variables or {}).items() if k in rendering},
                option=orjson.OPT_SORT_KEYS,
            ),
        )
        return Ready(principal, feed, executor, name, group_key)

    async def join(self, ready: Ready, outbox: Outbox, subscription_id: str) -> Subscriber:
        """Follow the feed: replay (handed to the outbox as it goes), then live."""
        subscriber = Subscriber(outbox, subscription_id, ready.feed)
        principal = ready.principal

        def make_group(stream: str) -> Group:
            return Group(stream, principal.tenant_id.hex, ready.executor, principal, ready.name)

        try:
            await self.hub.add(subscriber, ready.group_key, make_group)
        except ReplayGap:
            self.hub.remove(subscriber)
            raise refusal("BAD_USER_INPUT", GAP_MESSAGE) from None
        except BaseException:
            self.hub.remove(subscriber)
            raise
        return subscriber

    async def _known(self, stream: str, position: Position) -> bool:
        entry_id = f"{position[0]}-{position[1]}"
        return bool(await self.services.redis.xrange(stream, min=entry_id, max=entry_id, count=1))

    async def _source(
        self,
        principal: Principal,
        document: DocumentNode,
        variables: dict[str, Any] | None,
        name: str | None,
    ) -> tuple[Feed, Executor]:
        """Coerce the variables and arguments and call the subscription's resolver."""
        context = RequestContext.for_principal(principal, self.services)
        try:
            built = Executor.build(
                self.schema,
                document,
                context_value=context,
                raw_variable_values=variables,
                operation_name=name,
                hide_suggestions=not self.settings.development,
            )
            if isinstance(built, list):
                raise self.formatted(built, "BAD_USER_INPUT")
            source = create_source_event_stream(built)
            if not isinstance(source, ExecutionResult) and not isinstance(source, Feed):
                source = await source  # type: ignore[misc]
        finally:
            context.loaders.close()
        if isinstance(source, ExecutionResult):
            raise self.formatted(source.errors or [], None)
        return source, built

    def rendering_variables(
        self, sha: str, document: DocumentNode, name: str | None
    ) -> frozenset[str]:
        """The variables an event's rendering can depend on: all but those used only in
        the root field's arguments (`after`, `types`, `activityId`)."""
        key = (sha, name)
        found = self._render_variables.get(key)
        if found is None:
            if len(self._render_variables) >= MAX_DOCUMENTS:  # bounded, like the documents
                self._render_variables.clear()
            found = self._render_variables[key] = _variables_beyond_root_arguments(document)
        return found

    def formatted(self, errors: list[GraphQLError], code: str | None) -> CannotSubscribe:
        entries = [format_error(error, self.settings) for error in errors]
        if code is not None:
            for entry in entries:
                entry["extensions"]["code"] = code
        return CannotSubscribe(entries)


def _variables_beyond_root_arguments(document: DocumentNode) -> frozenset[str]:
    """Names of the variables used anywhere but in the root fields' own arguments."""
    root_arguments: set[int] = set()
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for selection in definition.selection_set.selections:
                if isinstance(selection, FieldNode):
                    root_arguments.update(id(argument) for argument in selection.arguments or ())

    names: set[str] = set()

    class Collect(Visitor):
        def enter_argument(self, node: Any, *_: Any) -> Any:
            return Visitor.SKIP if id(node) in root_arguments else None

        def enter_variable_definition(self, *_: Any) -> Any:
            return Visitor.SKIP

        def enter_variable(self, node: VariableNode, *_: Any) -> None:
            names.add(node.name.value)

    visit(document, Collect())
    return frozenset(names)
