"""The room event envelope: the one shape every transport delivers.

Encoded once per broadcast (``Envelope.encode``) and written as-is to every
subscriber, whatever its transport.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ValidationFailed

# \Z, not $: "$" also matches before a final newline, which would split an SSE frame.
NAME_RE = re.compile(r"\A[A-Za-z0-9_.:@~-]{1,128}\Z")

# Names the transports use for their own frames; an application event cannot take them.
RESERVED_EVENTS = frozenset(
    {
        "open", "recovery", "call", "close", "error", "joined", "left",
        "connect", "connect_error", "disconnect", "message_ack",
        "join", "leave", "publish", "ack",
    }
)


def check_name(kind: str, value: object, *, reserved: frozenset[str] = frozenset()) -> str:
    """Validate a room or event name, or raise ``ValidationFailed``."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValidationFailed(
            f"{kind} must be 1-128 characters of A-Z a-z 0-9 _ . : @ ~ -", field=kind
        )
    if value in reserved:
        raise ValidationFailed(f"{kind} {value!r} is reserved by the gateway", field=kind)
    return value


def server_target(room: str | None, event: str) -> tuple[str, str]:
    """Validate where a server-side emit goes (``gateway.emit``, ``/api/publish``, the Redis
    ``Emitter``): the same name rules as a client's publish, reserved names included.
    ``None`` is the whole namespace (the room ``*`` every session is in)."""
    return ("*" if room is None else check_name("room", room)), check_name("event", event, reserved=RESERVED_EVENTS)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One room event, as logged and as delivered."""

    namespace: str
    room: str
    event: str
    data: Any
    offset: str
    sender: str | None
    client_event_id: str | None
    ts: int  # server time, milliseconds since the epoch
    # The sender asked for its own copy (includeSelf). Not on the wire: it decides
    # whether a replay to the sender includes the event, as the live fan-out did.
    echo: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The JSON object clients receive (the namespace is implied by the connection)."""
        return {
            "event": self.event,
            "data": self.data,
            "room": self.room,
            "offset": self.offset,
            "sender": self.sender,
            "clientEventId": self.client_event_id,
            "ts": self.ts,
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.to_wire())

    def to_record(self) -> dict[str, Any]:
        """What a broker stores and ships between nodes (the namespace included)."""
        record = {"ns": self.namespace, **self.to_wire()}
        if self.echo:
            record["echo"] = True
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Envelope:
        return cls(
            namespace=record["ns"],
            room=record["room"],
            event=record["event"],
            data=record.get("data"),
            offset=record["offset"],
            sender=record.get("sender"),
            client_event_id=record.get("clientEventId"),
            ts=int(record["ts"]),
            echo=bool(record.get("echo", False)),
        )


def decode_wire(raw: bytes | str, namespace: str = "/") -> Envelope:
    """Parse a delivered envelope (clients use this); raises ``ValidationFailed``."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"envelope is not JSON: {exc}") from None
    return envelope_from_wire(obj, namespace)


def envelope_from_wire(obj: Any, namespace: str = "/") -> Envelope:
    if not isinstance(obj, dict):
        raise ValidationFailed("envelope must be a JSON object")
    try:
        return Envelope.from_record({"ns": namespace, **obj})
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationFailed(f"envelope is missing or has a wrong-typed field: {exc}") from None
