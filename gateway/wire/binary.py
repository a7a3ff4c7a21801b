"""Binary payloads: ``bytes`` anywhere in a payload, and their one JSON form.

Socket.IO carries ``bytes`` as binary attachments; everything that speaks JSON carries
each one as a **marker object** ``{"_rtgw_binary": "<base64>"}`` (RFC 4648 base64 with
padding): SSE frames, POST bodies and their answers, the Redis broker's log and fan-out,
routed commands, dedup acks. Between the edges the gateway holds real ``bytes``:
``dumps`` writes markers, ``loads`` reads them back, and the payload gate
(``envelope.check_data``) turns the markers a client sent into ``bytes`` through
``decode_markers``. So a Socket.IO client and an SSE client exchange the same bytes.

The key is reserved on every transport (``docs/protocol.md``, "Binary payloads"): an
object holding it must be a marker alone with valid base64, else ``validation_error``.

No server library here: clients import this module too.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from gateway.wire.errors import ValidationFailed

MARKER = "_rtgw_binary"
# How orjson writes the key: ``loads`` walks only text that holds it.
_IN_JSON, _IN_TEXT = b'"' + MARKER.encode() + b'"', '"' + MARKER + '"'
# Far deeper than any payload (envelope.MAX_DEPTH) inside a record; a recursion never near Python's limit.
_MAX_NESTING = 256


def _marker(value: Any) -> Any:
    # orjson's ``default``: called only for what it cannot encode itself, so a payload
    # without bytes costs nothing more.
    if isinstance(value, bytes):
        return {MARKER: base64.b64encode(value).decode("ascii")}
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(value: Any, option: int = 0) -> bytes:
    """``orjson.dumps`` with every ``bytes`` written as its marker object."""
    return orjson.dumps(value, default=_marker, option=option)


def loads(raw: bytes | str) -> Any:
    """``orjson.loads``, with the marker objects of text ``dumps`` wrote read back as ``bytes``.

    Raises ``orjson.JSONDecodeError`` (not JSON) or ``ValidationFailed`` (a malformed marker).
    """
    value = orjson.loads(raw)
    held = _IN_JSON in raw if isinstance(raw, bytes) else _IN_TEXT in raw
    return decode_markers(value) if held else value


def decode_markers(value: Any, what: str = "data") -> Any:
    """``value`` with every marker object replaced by its ``bytes``; the containers on the way
    to one are copied, the rest is shared (a value without markers comes back as is).

    Raises ``ValidationFailed`` naming ``what`` for an object that holds the marker key but is
    not a marker: other keys beside it, a value that is not a string, or invalid base64.
    """
    return _decode(value, what, 0)


def _decode(value: Any, what: str, depth: int) -> Any:
    if depth > _MAX_NESTING:
        raise ValidationFailed(f"{what} nests too deep to read", field=what)
    if isinstance(value, dict):
        if MARKER in value:
            return _bytes_of(value, what)
        items = {k: _decode(v, what, depth + 1) for k, v in value.items()}
        return value if all(items[k] is v for k, v in value.items()) else items
    if isinstance(value, (list, tuple)):  # a tuple (check_data takes them) that held a marker: a list
        decoded = [_decode(v, what, depth + 1) for v in value]
        return value if all(d is v for d, v in zip(decoded, value, strict=True)) else decoded
    return value


def _bytes_of(marker: dict[str, Any], what: str) -> bytes:
    text = marker[MARKER]
    if len(marker) != 1 or not isinstance(text, str):
        raise ValidationFailed(
            f'{what}: an object with the key "{MARKER}" is binary: {{"{MARKER}": "<base64>"}} and nothing else',
            field=what,
        )
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a character that is not ASCII
        raise ValidationFailed(f"{what}: {MARKER} is not valid base64", field=what) from None


def decoded_size(text: str) -> int:
    """How many bytes a marker's base64 ``text`` stands for (read before decoding it, so an
    oversized binary is refused without ever being held decoded)."""
    return len(text) // 4 * 3 - text[-2:].count("=")


def base64_overhead(value: Any) -> int:
    """What writing the ``bytes`` inside ``value`` as base64 adds to their size: a POST body
    weighs its length less this (``docs/protocol.md``, "Binary payloads")."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            total += -(-len(item) // 3) * 4 - len(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def body_limit(limit: int) -> int:
    """The longest JSON body that can weigh ``limit`` with its binaries counted decoded: base64
    adds at most a third (a marker's own 19 characters cover its padding)."""
    return limit + limit // 3 + 1
