"""The `graphql-transport-ws` subprotocol (the graphql-ws library's): connection_init →
connection_ack, subscribe → next… / error, complete, ping ↔ pong."""

from __future__ import annotations

from typing import Any

from switchboard.live.ws_protocol import Session, WireProtocol, unknown


class GraphQLTransportWS(WireProtocol):
    name = "graphql-transport-ws"
    subscribe_type = "subscribe"
    next_type = "next"

    @staticmethod
    def handle(session: Session, kind: str, message: dict[str, Any]) -> None:
        if kind == "subscribe":
            session.subscribe(message)
        elif kind == "complete":
            session.complete(message.get("id"))
        elif kind == "ping":
            session.send({"type": "pong"})
        elif kind != "pong":
            raise unknown(kind)
