"""The room event envelope: the one shape every transport delivers.

Encoded once per broadcast (``Envelope.encode``) and written as-is to every
subscriber, whatever its transport.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from gateway.wire.binary import MARKER, decode_markers, decoded_size, dumps, loads
from gateway.wire.errors import PayloadTooLarge, ValidationFailed

# \Z, not $: "$" also matches before a final newline, which would split an SSE frame.
NAME_RE = re.compile(r"\A[A-Za-z0-9_.:@~-]{1,128}\Z")

NAME_PATTERN = "^[A-Za-z0-9_.:@~-]{1,128}$"  # the same rule, as JSON Schema states it

# Names the transports use for their own frames, and the names socket.io-client reserves
# for itself (its emitter throws on them, and the client disconnects: "parse error").
# No event that enters a log may take one: its replay would break every member again.
RESERVED_EVENTS = frozenset(
    {
        "open", "recovery", "call", "close", "error", "joined", "left",
        "connect", "connect_error", "disconnect", "disconnecting", "message_ack",
        "newListener", "removeListener",
        "join", "leave", "publish", "ack",
        # presence: the request, and the gateway's own join/leave announcements (core/presence.py)
        "presence", "presence.join", "presence.leave",
    }
)

# Deeper than this, a payload is refused (orjson encodes at most 254 levels, and
# browsers' and Python's JSON parsers have limits of their own).
MAX_DEPTH = 32
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson encodes


def check_data(value: Any, what: str = "data", *, max_binary: int | None = None) -> Any:
    """Refuse a payload that would not reach every client as the same JSON (or the same bytes).

    Finite numbers, integers that fit 64 bits, string keys, ``bytes`` (``wire/binary.py``), at
    most ``MAX_DEPTH`` levels; raises ``ValidationFailed`` (nothing is logged). Iterative, so a
    deep payload cannot exhaust the stack. Returns the payload with every binary marker object
    (JSON's form of ``bytes``) as its ``bytes``, a copy where it held one; ``max_binary`` bounds
    its binaries' decoded bytes together (``PayloadTooLarge``, checked before any is decoded).
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    binary, markers = 0, False
    while stack:
        item, depth = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode()
                except UnicodeEncodeError:  # a lone surrogate: no UTF-8 encoder will send it
                    raise ValidationFailed(f"{what}: strings must be valid Unicode", field=what) from None
            continue
        if isinstance(item, bytes):
            binary += len(item)
            continue
        if isinstance(item, int):
            if not _INT_MIN <= item <= _INT_MAX:
                raise ValidationFailed(f"{what}: integers must fit in 64 bits", field=what)
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise ValidationFailed(f"{what}: numbers must be finite (no NaN or Infinity)", field=what)
        elif isinstance(item, (list, tuple, dict)):
            if depth > MAX_DEPTH:
                raise ValidationFailed(f"{what} nests deeper than {MAX_DEPTH} levels", field=what, maxDepth=MAX_DEPTH)
            if isinstance(item, dict):
                if not all(isinstance(k, str) for k in item):
                    raise ValidationFailed(f"{what}: object keys must be strings", field=what)
                if MARKER in item:  # checked whole by decode_markers; counted now, decoded after
                    markers = True
                    text = item[MARKER]
                    binary += decoded_size(text) if isinstance(text, str) else 0
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
        else:
            raise ValidationFailed(f"{what}: {type(item).__name__} is neither JSON nor bytes", field=what)
    if max_binary is not None and binary > max_binary:
        raise PayloadTooLarge(
            f"{what} holds {binary} bytes of binary, over maxPayload ({max_binary})", field=what, maxPayload=max_binary
        )
    return decode_markers(value, what) if markers else value


# U+2028, U+2029 and U+0085 are line breaks to some event-stream readers (those that
# split with str.splitlines()); as JSON escapes they mean the same and break nothing.
_SSE_UNSAFE = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"), (b"\xc2\x85", b"\\u0085"))


def sse_safe(encoded: bytes) -> bytes:
    """JSON bytes that no event-stream reader splits: the three odd line breaks escaped."""
    if b"\xe2\x80" in encoded or b"\xc2\x85" in encoded:
        for raw, escaped in _SSE_UNSAFE:
            encoded = encoded.replace(raw, escaped)
    return encoded


def is_name(value: object) -> TypeGuard[str]:
    """A room, event, sid or key name by the wire format's rule."""
    return isinstance(value, str) and NAME_RE.match(value) is not None


def check_name(kind: str, value: object, *, reserved: frozenset[str] = frozenset()) -> str:
    """Validate a room or event name, or raise ``ValidationFailed``."""
    if not is_name(value):
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


def server_event(room: str | None, event: str, data: Any) -> tuple[str, str, Any]:
    """``server_target`` plus the payload check: the whole gate of a server-side emit."""
    return (*server_target(room, event), check_data(data))


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
    # Not logged: no offset (``""`` here, ``null`` on the wire), never replayed, and dropped
    # for a connection not ready for it (docs/protocol.md, "Volatile events").
    volatile: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The JSON object clients receive (the namespace is implied by the connection)."""
        wire = {
            "event": self.event,
            "data": self.data,
            "room": self.room,
            "offset": self.offset or None,
            "sender": self.sender,
            "clientEventId": self.client_event_id,
            "ts": self.ts,
        }
        if self.volatile:
            wire["volatile"] = True
        return wire

    def encode(self) -> bytes:
        """The envelope as JSON (``bytes`` as binary markers), safe to put on one ``data:`` line
        of an event stream."""
        return sse_safe(dumps(self.to_wire()))

    def to_record(self) -> dict[str, Any]:
        """What a broker stores and ships between nodes (the namespace included); encoded with
        ``binary.dumps``, read back with ``binary.loads``."""
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
            offset=record["offset"] or "",
            sender=record.get("sender"),
            client_event_id=record.get("clientEventId"),
            ts=int(record["ts"]),
            echo=bool(record.get("echo", False)),
            volatile=record.get("volatile") is True,
        )


def decode_wire(raw: bytes | str, namespace: str = "/") -> Envelope:
    """Parse a delivered envelope (clients use this); raises ``ValidationFailed``."""
    try:
        obj = loads(raw)
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
