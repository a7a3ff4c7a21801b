"""Server -> client frames: one typed dataclass each, one ``encode`` and one ``decode_frame``.

The gateway builds these and sends ``frame.NAME`` with ``frame.encode()`` (the JSON object
docs/protocol.md shows); clients read them back with ``decode_frame``, which refuses
anything malformed with ``FrameError``. Room events are not frames: they travel as
``gateway.wire.envelope.Envelope`` under their own event name.

``decode_frame`` checks what a client keeps and sends back: ``sid`` and ``key`` are names by
the wire format's rule (they go into the resume cursor and headers), rooms are names (or
``*``), offsets are ASCII digits, ping values positive and finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from gateway.wire.envelope import is_name
from gateway.wire.offsets import is_offset, is_room


class FrameError(ValueError):
    """A frame that is not what its name says: the reader skips it."""


@dataclass(frozen=True, slots=True)
class Open:
    """The first frame of every connection. Times are milliseconds."""

    NAME: ClassVar[str] = "open"
    sid: str
    key: str
    namespace: str
    ping_interval: int
    ping_timeout: int
    max_payload: int
    rooms: tuple[str, ...]

    def encode(self) -> dict[str, Any]:
        return {
            "sid": self.sid, "key": self.key, "namespace": self.namespace,
            "pingInterval": self.ping_interval, "pingTimeout": self.ping_timeout,
            "maxPayload": self.max_payload, "rooms": list(self.rooms),
        }


@dataclass(frozen=True, slots=True)
class Joined:
    """The session is in ``room``; its events after ``offset`` will come."""

    NAME: ClassVar[str] = "joined"
    room: str
    offset: str

    def encode(self) -> dict[str, Any]:
        return {"room": self.room, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class Left:
    NAME: ClassVar[str] = "left"
    room: str

    def encode(self) -> dict[str, Any]:
        return {"room": self.room}


@dataclass(frozen=True, slots=True)
class Recovery:
    """After a resume's replay: ``gaps`` lists ``(room, after)`` whose events the log no longer had."""

    NAME: ClassVar[str] = "recovery"
    recovered: bool
    complete: bool
    replayed: int
    gaps: tuple[tuple[str, str | None], ...]

    def encode(self) -> dict[str, Any]:
        return {
            "recovered": self.recovered, "complete": self.complete, "replayed": self.replayed,
            "gaps": [{"room": room, "after": after} for room, after in self.gaps],
        }


@dataclass(frozen=True, slots=True)
class Call:
    """A server call the client answers with ``ack`` (SSE; Socket.IO uses its own acks)."""

    NAME: ClassVar[str] = "call"
    ack_id: str
    event: str
    data: Any

    def encode(self) -> dict[str, Any]:
        return {"ackId": self.ack_id, "event": self.event, "data": self.data}


@dataclass(frozen=True, slots=True)
class Close:
    """The connection ends; ``reconnect: false`` (``replaced``) means do not come back."""

    NAME: ClassVar[str] = "close"
    reason: str
    reconnect: bool

    def encode(self) -> dict[str, Any]:
        return {"reason": self.reason, "reconnect": self.reconnect}


Frame = Open | Joined | Left | Recovery | Call | Close

FRAMES: dict[str, type[Frame]] = {cls.NAME: cls for cls in (Open, Joined, Left, Recovery, Call, Close)}
"""Frame name -> class: the gateway's own frame names."""


def decode_frame(name: str, data: Any) -> Frame:
    """A frame's name and decoded JSON in, the typed frame out; ``FrameError`` if malformed."""
    if name not in FRAMES:
        raise FrameError(f"{name!r:.140} is not a frame of the gateway")
    if not isinstance(data, dict):
        raise FrameError(f"{name!r:.140} frame must carry a JSON object, not {type(data).__name__}")
    return _DECODERS[name](data)


def _open(data: dict[str, Any]) -> Open:
    sid, key, namespace = data.get("sid"), data.get("key"), data.get("namespace")
    interval, timeout = _ms(data.get("pingInterval")), _ms(data.get("pingTimeout"))
    max_payload, rooms = data.get("maxPayload", 0), data.get("rooms", [])
    if not is_name(sid) or not is_name(key):
        raise FrameError("open needs a sid and a key (names by the wire format's rule)")
    if not isinstance(namespace, str) or interval is None or timeout is None:
        raise FrameError("open needs a namespace and positive finite pingInterval and pingTimeout")
    if type(max_payload) is not int or max_payload < 0:
        raise FrameError("open's maxPayload must be a non-negative integer")
    if not isinstance(rooms, list) or not all(is_name(r) for r in rooms):
        raise FrameError("open's rooms must be a list of room names")
    return Open(sid, key, namespace, interval, timeout, max_payload, tuple(rooms))


def _joined(data: dict[str, Any]) -> Joined:
    room, offset = data.get("room"), data.get("offset")
    if not is_name(room) or not is_offset(offset):
        raise FrameError(f"joined needs a room name and an offset: {data!r:.200}")
    return Joined(room, offset)


def _left(data: dict[str, Any]) -> Left:
    room = data.get("room")
    if not is_name(room):
        raise FrameError(f"left needs a room name: {data!r:.200}")
    return Left(room)


def _recovery(data: dict[str, Any]) -> Recovery:
    recovered, complete = data.get("recovered", True), data.get("complete")
    replayed, raw_gaps = data.get("replayed"), data.get("gaps")
    if (not isinstance(recovered, bool) or not isinstance(complete, bool) or type(replayed) is not int
            or replayed < 0 or not isinstance(raw_gaps, list)):
        raise FrameError(f"recovery needs complete (bool), replayed (int >= 0), gaps (list): {data!r:.200}")
    gaps: list[tuple[str, str | None]] = []
    for gap in raw_gaps:
        room = gap.get("room") if isinstance(gap, dict) else None
        after = gap.get("after") if isinstance(gap, dict) else None
        if not is_room(room) or not (after is None or is_offset(after)):
            raise FrameError(f"a recovery gap needs a room and an offset or null: {gap!r:.200}")
        gaps.append((room, after))
    return Recovery(recovered, complete, replayed, tuple(gaps))


def _call(data: dict[str, Any]) -> Call:
    ack_id, event = data.get("ackId"), data.get("event")
    if not isinstance(ack_id, str) or not ack_id or not isinstance(event, str):
        raise FrameError(f"call needs string ackId and event: {data!r:.200}")
    return Call(ack_id, event, data.get("data"))


def _close(data: dict[str, Any]) -> Close:
    reason, reconnect = data.get("reason", ""), data.get("reconnect", True)
    if not isinstance(reason, str) or not isinstance(reconnect, bool):
        raise FrameError(f"close needs a string reason and a boolean reconnect: {data!r:.200}")
    return Close(reason, reconnect)


_DECODERS: dict[str, Callable[[dict[str, Any]], Frame]] = {
    "open": _open, "joined": _joined, "left": _left, "recovery": _recovery, "call": _call, "close": _close,
}


def _ms(value: Any) -> int | None:
    """A positive, finite number of milliseconds (a fraction rounded up), or None."""
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        return None
    return math.ceil(float(value))
