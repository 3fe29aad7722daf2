"""The legacy `graphql-ws` subprotocol (subscriptions-transport-ws): connection_init →
connection_ack + ka, start → data… / error, stop, connection_terminate.

Its clients expect a `ka` now and then, and a `connection_error` before a refused
connection_init closes; a subscription that cannot start gets one error, not a list."""

from __future__ import annotations

from typing import Any

from switchboard.live.ws_protocol import Closed, Session, WireProtocol, unknown

KEEP_ALIVE_S = 20.0


class GraphQLWS(WireProtocol):
    name = "graphql-ws"
    subscribe_type = "start"
    next_type = "data"
    keep_alive_s = KEEP_ALIVE_S
    keep_alive_frame = '{"type":"ka"}'

    @staticmethod
    def refuse_init(session: Session) -> None:
        session.send({"type": "connection_error", "payload": {"message": "Unauthorized"}})

    @staticmethod
    def acknowledge(session: Session) -> None:
        session.send({"type": "connection_ack"})
        session.send({"type": "ka"})

    @staticmethod
    def handle(session: Session, kind: str, message: dict[str, Any]) -> None:
        if kind == "start":
            session.subscribe(message)
        elif kind == "stop":
            session.complete(message.get("id"))
        elif kind == "connection_terminate":
            raise Closed(1000, "Normal closure")
        else:
            raise unknown(kind)

    @staticmethod
    def error_payload(errors: list[dict[str, Any]]) -> Any:
        return errors[0]
