"""What a websocket subprotocol module provides to the connection core (websocket.py): its
message names and framing. The core owns the rest (the send queue, admission, subscription
bookkeeping, closing); a protocol module never touches those, it calls the `Session` API.

`Closed` is how either side asks for a close with a code; the codes are
graphql-transport-ws's, used by both protocols (websocket.py has the table).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol


class Closed(Exception):
    """Close the connection with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class Session(Protocol):
    """What a protocol may ask of its connection once it is initialised."""

    def send(self, message: Mapping[str, Any]) -> None: ...

    def subscribe(self, message: dict[str, Any]) -> None: ...

    def complete(self, subscription_id: Any) -> None: ...


class WireProtocol:
    """One subprotocol's framing. Subclasses set the names and answer the messages that
    differ; the connection core calls these hooks."""

    name: ClassVar[str]  # the Sec-WebSocket-Protocol value
    subscribe_type: ClassVar[str]  # a subscribe before connection_init is refused with 4401
    next_type: ClassVar[str]  # the type of each event's message
    # A frame sent after this long without another one (None: never).
    keep_alive_s: ClassVar[float | None] = None
    keep_alive_frame: ClassVar[str] = ""

    @staticmethod
    def refuse_init(session: Session) -> None:
        """Before the 4401 close of a connection_init without a valid token."""

    @staticmethod
    def acknowledge(session: Session) -> None:
        session.send({"type": "connection_ack"})

    @staticmethod
    def handle(session: Session, kind: str, message: dict[str, Any]) -> None:
        """A message after connection_ack (a second connection_init never gets here)."""
        raise NotImplementedError

    @staticmethod
    def error_payload(errors: list[dict[str, Any]]) -> Any:
        """The payload of the `error` message of a subscription that cannot start."""
        return errors


def unknown(kind: str) -> Closed:
    return Closed(4400, f"Invalid message received: unknown type {kind[:40]}")
