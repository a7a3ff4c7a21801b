"""Client->server requests: one typed class each, one encoder, one validation gate.

Whatever carried a request (a Socket.IO event, an SSE + POST body, a command routed
from another node), ``decode_request`` is where it is checked: names, payloads, ids
and keys, with the codes of ``gateway.wire.errors``. The hub only ever sees the
frozen dataclasses below. ``encode`` gives the JSON body of ``docs/protocol.md``
(camelCase), which ``decode_request`` reads back; a payload may hold ``bytes``, which
``binary.dumps`` writes as marker objects and the gate reads back as ``bytes``.

No server library here: clients import this module too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

import orjson

from gateway.wire.envelope import RESERVED_EVENTS, check_data, check_name
from gateway.wire.errors import MalformedJSON, UnknownEvent, ValidationFailed

# A field's check: (its wire name, the value sent) -> the value kept; raises ValidationFailed.
Check = Callable[[str, Any], Any]


class _Problem(Exception):
    """A structural problem of one field (missing, wrong type, too long), gathered with the others."""


def _wire(name: str, check: Check) -> dict[str, Any]:
    """A dataclass field's metadata: its camelCase name on the wire and its check."""
    return {"wire": name, "check": check}


def _room(name: str, value: Any) -> str:
    return check_name(name, _string(value))


def _event(name: str, value: Any) -> str:
    return check_name(name, _string(value), reserved=RESERVED_EVENTS)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Problem("Input should be a valid string")
    return value


def _data(name: str, value: Any) -> Any:
    return check_data(value, name)


def _text(max_length: int, *, optional: bool = False) -> Check:
    def check(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        text = _string(value)
        if not 1 <= len(text) <= max_length:
            raise _Problem(f"String should have 1 to {max_length} characters")
        return text

    return check


def _cursor(name: str, value: Any) -> str | None:
    # A page's ``next`` is the last public id it listed: a name by the wire format's rule.
    return None if value is None else check_name(name, _string(value))


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Problem("Input should be a valid boolean")
    return value


_CLIENT_EVENT_ID = _wire("clientEventId", _text(128, optional=True))
_VOLATILE = _wire("volatile", _flag)


@dataclass(frozen=True, slots=True)
class Join:
    """Join a room; the answer is ``{"room", "offset"}`` (the position the member starts from)."""

    OP: ClassVar[str] = "join"
    room: str = field(metadata=_wire("room", _room))

    def encode(self) -> dict[str, Any]:
        return _encode(self)


@dataclass(frozen=True, slots=True)
class Leave:
    """Leave a room; the answer is ``{"room"}``."""

    OP: ClassVar[str] = "leave"
    room: str = field(metadata=_wire("room", _room))

    def encode(self) -> dict[str, Any]:
        return _encode(self)


@dataclass(frozen=True, slots=True)
class Publish:
    """A room event; the answer (``{"room", "offset"}``) comes once it is in the room's log."""

    OP: ClassVar[str] = "publish"
    room: str = field(metadata=_wire("room", _room))
    event: str = field(default="message", metadata=_wire("event", _event))
    data: Any = field(default=None, metadata=_wire("data", _data))
    client_event_id: str | None = field(default=None, metadata=_CLIENT_EVENT_ID)
    include_self: bool = field(default=False, metadata=_wire("includeSelf", _flag))
    # Not logged, no offset, not deduplicated; dropped for a member not ready for it.
    volatile: bool = field(default=False, metadata=_VOLATILE)

    def encode(self) -> dict[str, Any]:
        return _encode(self)


@dataclass(frozen=True, slots=True)
class Emit:
    """An application event for the namespace's handler; the answer is its return value."""

    OP: ClassVar[str] = "emit"
    event: str = field(metadata=_wire("event", _event))
    data: Any = field(default=None, metadata=_wire("data", _data))
    client_event_id: str | None = field(default=None, metadata=_CLIENT_EVENT_ID)
    # Not deduplicated (the clients send it once, never again).
    volatile: bool = field(default=False, metadata=_VOLATILE)

    def encode(self) -> dict[str, Any]:
        return _encode(self)


@dataclass(frozen=True, slots=True)
class Ack:
    """The client's answer to a server ``call``."""

    OP: ClassVar[str] = "ack"
    ack_id: str = field(metadata=_wire("ackId", _text(64)))
    result: Any = field(default=None, metadata=_wire("result", _data))

    def encode(self) -> dict[str, Any]:
        return _encode(self)


@dataclass(frozen=True, slots=True)
class Presence:
    """Who is in a room: ``{"room", "members": [{"sid", "user", "claims"}], "next"}``, a page at a
    time; ``cursor`` is the ``next`` of the page before (none: the first page)."""

    OP: ClassVar[str] = "presence"
    room: str = field(metadata=_wire("room", _room))
    cursor: str | None = field(default=None, metadata=_wire("cursor", _cursor))

    def encode(self) -> dict[str, Any]:
        return _encode(self)


@dataclass(frozen=True, slots=True)
class Close:
    """End the session for good (no body)."""

    OP: ClassVar[str] = "close"

    def encode(self) -> dict[str, Any]:
        return {}


Request = Join | Leave | Publish | Emit | Ack | Presence | Close

REQUESTS: dict[str, type[Request]] = {cls.OP: cls for cls in (Join, Leave, Publish, Emit, Ack, Presence, Close)}


def wire_fields(cls: type[Request]) -> dict[str, str]:
    """A request class's fields: wire name -> attribute name (what its JSON body may hold)."""
    return {f.metadata["wire"]: f.name for f in fields(cls)}


def _encode(request: Request) -> dict[str, Any]:
    return {f.metadata["wire"]: getattr(request, f.name) for f in fields(request)}


def decode_request(op: str, raw: bytes | bytearray | str | Any, *, max_binary: int | None = None) -> Request:
    """THE validation gate of a client request: ``raw`` is its JSON body (bytes or text) or
    an already-decoded object. Raises ``MalformedJSON`` (not JSON), ``ValidationFailed``
    (listing every structural problem in ``errors``, or naming the field whose name or
    payload is refused), ``UnknownEvent`` (no such ``op``) or ``PayloadTooLarge`` (its
    payload's binaries hold more than ``max_binary`` bytes, decoded). Binary marker objects
    come out as ``bytes`` (``wire/binary.py``)."""
    cls = REQUESTS.get(op)
    if cls is None:
        raise UnknownEvent(f"no request {op[:64]!r}", event=op[:64])
    if cls is Close and not raw:  # DELETE has no body; a routed close carries {}
        return Close()
    if isinstance(raw, (bytes, bytearray, str)):
        raw = loads(raw)
    if not isinstance(raw, Mapping):
        raise _invalid([("body", f"Input should be a JSON object with the fields of {op}")])
    spec = fields(cls)
    problems = [(str(k), "Extra inputs are not permitted") for k in raw if k not in {f.metadata["wire"] for f in spec}]
    refused: ValidationFailed | None = None  # a name or payload refused: its own message
    given: dict[str, Any] = {}
    for f in spec:
        name = f.metadata["wire"]
        if name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                problems.append((name, "Field required"))
            continue
        check, value = f.metadata["check"], raw[name]
        try:
            # A payload's check also bounds its binaries: the one check with a limit of its own.
            given[f.name] = check_data(value, name, max_binary=max_binary) if check is _data else check(name, value)
        except _Problem as exc:
            problems.append((name, str(exc)))
        except ValidationFailed as exc:
            refused = refused or exc
    if problems:
        raise _invalid(problems)
    if refused is not None:
        raise refused
    return cls(**given)


def _invalid(problems: list[tuple[str, str]]) -> ValidationFailed:
    errors = [{"field": name, "problem": problem} for name, problem in problems]
    return ValidationFailed("; ".join(f"{name}: {problem}" for name, problem in problems), errors=errors)


# 19 digits in a row may be an integer beyond 64 bits, which orjson would silently read
# as a float: such a body is read by the stdlib, which keeps it an int for check_data
# to refuse, as the Socket.IO side (the stdlib's JSON too) does.
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def loads(raw: bytes | bytearray | str) -> Any:
    """A request body's JSON, read as both transports read it; raises ``MalformedJSON``."""
    body = raw.encode() if isinstance(raw, str) else bytes(raw)
    try:
        if _LONG_NUMBER.search(body) is None:
            return orjson.loads(body)
        return json.loads(body)
    except (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedJSON(f"body is not valid JSON: {exc}") from None

