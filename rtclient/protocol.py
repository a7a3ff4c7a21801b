"""The client's protocol core: pure, no I/O, no event loop.

Every client (asyncio or blocking, SSE + POST or Socket.IO) is a thin driver over
these pieces:

- ``SseParser``     bytes of a ``text/event-stream`` in, frames out;
- ``ClientState``   one session's view: sid, private key, cursor, per-room offsets, the outbox;
                    gateway frames in, typed ``ClientEvent``s out (duplicates dropped,
                    gaps surfaced), malformed frames refused with ``ProtocolError``;
- ``Outbox``        every publish/emit with its ``clientEventId`` until acked;
- ``Backoff``       reconnect delays with exponential growth and full jitter;
- ``token_value``   the connect credential, from a string or a callback asked each attempt.

The ``sid`` is the session's public id (others see it as ``sender``); the ``key`` the
``open`` frame carries is private and is what proves ownership: it goes in the
``X-Session-Key`` header of every SSE request, first in the resume cursor
(``<sid>:<key>;<room>=<offset>,...``) and in Socket.IO's resume ``auth``.
"""

from __future__ import annotations

import itertools
import random
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import orjson

from gateway.errors import GatewayError, error_from_wire

# -- offsets and the resume cursor (the gateway's format, kept here so the client does
#    not depend on the server's internals) ------------------------------------------


def parse_offset(offset: str) -> tuple[int, int]:
    """``"12-3"`` -> ``(12, 3)``; raises ``ValueError`` on anything else."""
    ms, sep, seq = offset.partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit():
        raise ValueError(f"not an offset: {offset!r}")
    return int(ms), int(seq)


def format_cursor(sid: str, key: str, positions: Mapping[str, str]) -> str:
    """``<sid>:<key>;<room>=<offset>,...``: what ``Last-Event-ID`` carries to resume."""
    return f"{sid}:{key};" + ",".join(f"{room}={off}" for room, off in positions.items())


# -- the connect credential ----------------------------------------------------------

TokenSource: TypeAlias = str | Callable[[], str | None | Awaitable[str | None]] | None
"""``token=``: a string, or a callable (for the asyncio clients, possibly async) that
returns one. A callable is asked before every connection attempt, so a reconnect after
``close {reason: "token_expired"}`` carries a fresh token."""


def token_value(token: Any) -> Any:
    """The token to send now: ``token`` itself, or what the callable returns (which, for an
    async callable, is an awaitable the asyncio clients await; see ``atoken_value``)."""
    value = token() if callable(token) else token
    if value is not None and not isinstance(value, str) and not hasattr(value, "__await__"):
        raise TypeError(f"a token must be a str (or None), not {type(value).__name__}")
    return value


async def atoken_value(token: Any) -> str | None:
    """``token_value`` for asyncio: sync and async callables alike."""
    value = token_value(token)
    if hasattr(value, "__await__"):
        value = await value
        if value is not None and not isinstance(value, str):
            raise TypeError(f"a token must be a str (or None), not {type(value).__name__}")
    return value


def bearer(token: str | None) -> dict[str, str]:
    """The header that carries the connect credential (never the URL: URLs end up in logs)."""
    return {"Authorization": f"Bearer {token}"} if token else {}

# -- typed events the application receives ----------------------------------------


@dataclass(frozen=True, slots=True)
class Opened:
    kind: Literal["open"]
    sid: str
    namespace: str
    ping_interval: float  # seconds
    ping_timeout: float
    rooms: tuple[str, ...]
    resumed: bool


@dataclass(frozen=True, slots=True)
class RoomEvent:
    kind: Literal["event"]
    event: str
    data: Any
    room: str
    offset: str
    sender: str | None
    client_event_id: str | None
    ts: int


@dataclass(frozen=True, slots=True)
class Recovery:
    kind: Literal["recovery"]
    complete: bool
    replayed: int
    gaps: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class Gap:
    """Events of ``room`` after ``after`` may never arrive: the gateway no longer had them."""

    kind: Literal["gap"]
    room: str
    after: str | None
    reason: Literal["log_trimmed", "session_lost"]


@dataclass(frozen=True, slots=True)
class Call:
    kind: Literal["call"]
    ack_id: str
    event: str
    data: Any


@dataclass(frozen=True, slots=True)
class Closing:
    kind: Literal["close"]
    reason: str
    reconnect: bool


ClientEvent = Opened | RoomEvent | Recovery | Gap | Call | Closing


class ProtocolError(ValueError):
    """The server sent a frame this client cannot read; the frame is skipped."""


class ConnectionLost(Exception):
    """The connection dropped under a request; it is retried after reconnecting."""


class SessionEnded(Exception):
    """The client stopped for good: requests pending or made afterwards fail with this.

    ``reason`` is the gateway's close reason (``replaced``: another connection resumed this
    session with its key, and this client must not fight it for the session) or
    ``closed`` when the application called ``close()``.
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or _ENDED.get(reason, f"the gateway ended the session ({reason!r}) "
                                                       "and asked the client not to reconnect"))


_ENDED = {
    "replaced": "the session was taken over by another connection that resumed it with its key "
                "(close reason 'replaced'); this client stopped and will not reconnect",
    "closed": "the client was closed",
}


# -- SSE framing -------------------------------------------------------------------


@dataclass(slots=True)
class SseFrame:
    event: str = "message"
    data: str = ""
    id: str | None = None


class SseParser:
    """Incremental ``text/event-stream`` parser (WHATWG rules for the fields used here).

    ``feed`` returns completed frames; comment lines (``: ping``) only bump ``heard``,
    which a driver uses as its liveness clock.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._frame = SseFrame()
        self._data: list[str] = []
        self.heard = 0

    def feed(self, chunk: bytes) -> list[SseFrame]:
        self.heard += 1
        self._buffer += chunk
        frames: list[SseFrame] = []
        *lines, self._buffer = self._buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if not line:
                if self._data or self._frame.event != "message" or self._frame.id is not None:
                    self._frame.data = "\n".join(self._data)
                    frames.append(self._frame)
                self._frame, self._data = SseFrame(), []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._frame.event = value
            elif name == "id":
                self._frame.id = value
        return frames


# -- outbox ------------------------------------------------------------------------


@dataclass(slots=True)
class Pending:
    """One request that must be acked; resent with the same ``client_event_id`` until it is."""

    client_event_id: str
    kind: Literal["publish", "emit"]
    body: dict[str, Any]
    attempts: int = 0
    result: Any = None
    done: bool = False


class Outbox:
    def __init__(self, prefix: str | None = None) -> None:
        self._prefix = prefix or secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._pending: OrderedDict[str, Pending] = OrderedDict()

    def add(self, kind: Literal["publish", "emit"], body: dict[str, Any]) -> Pending:
        ceid = f"{self._prefix}-{next(self._ids)}"
        entry = Pending(ceid, kind, {**body, "clientEventId": ceid})
        self._pending[ceid] = entry
        return entry

    def acked(self, entry: Pending, result: Any) -> None:
        entry.result, entry.done = result, True
        self._pending.pop(entry.client_event_id, None)

    def failed(self, entry: Pending) -> None:
        self._pending.pop(entry.client_event_id, None)

    def pending(self) -> list[Pending]:
        return list(self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)


# -- reconnect delays ----------------------------------------------------------------


class Backoff:
    """Exponential backoff with jitter: ``uniform(base / 2, min(cap, base * 2**n))``."""

    def __init__(self, base: float = 0.2, cap: float = 10.0, rng: random.Random | None = None) -> None:
        self.base, self.cap = base, cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        # The exponent is bounded: 2**n overflows a float after ~1,000 attempts.
        delay = self._rng.uniform(self.base / 2, min(self.cap, self.base * 2 ** min(self.attempt, 30)))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


# -- session state -----------------------------------------------------------------


@dataclass(slots=True)
class Stats:
    received: int = 0
    duplicates: int = 0
    gaps: int = 0
    malformed: int = 0
    reconnects: int = 0


@dataclass(slots=True)
class ClientState:
    """What a client knows about its session, whatever carries it."""

    namespace: str = "/"
    sid: str | None = None
    key: str | None = None  # the session's private key, from ``open``: never shown to others
    rooms: set[str] = field(default_factory=set)
    # Last offset handed to the application, per room: the resume position and the dedup line.
    positions: dict[str, str] = field(default_factory=dict)
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    outbox: Outbox = field(default_factory=Outbox)
    stats: Stats = field(default_factory=Stats)

    @property
    def cursor(self) -> str | None:
        """The SSE resume cursor (what ``Last-Event-ID`` carries): ``<sid>:<key>;<room>=<offset>,...``."""
        if self.sid is None or self.key is None:
            return None
        return format_cursor(self.sid, self.key, self.positions)

    def resume_auth(self) -> dict[str, Any]:
        """The Socket.IO ``auth`` fields that resume this session."""
        if self.sid is None or self.key is None:
            return {}
        return {"sid": self.sid, "key": self.key, "offsets": dict(self.positions)}

    def session_headers(self) -> dict[str, str]:
        """What every SSE request on the session (POST, DELETE) must carry."""
        return {"X-Session-Key": self.key} if self.key is not None else {}

    def handle(self, name: str, data: Any) -> list[ClientEvent]:
        """A gateway frame in, what the application should see out.

        Raises ``ProtocolError`` (and changes nothing) if the frame is malformed.
        """
        try:
            return self._handle(name, data)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            self.stats.malformed += 1
            raise ProtocolError(f"malformed {name!r} frame: {exc!r}") from None

    def handle_raw(self, name: str, raw: str) -> list[ClientEvent]:
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            self.stats.malformed += 1
            raise ProtocolError(f"{name!r} frame is not JSON: {exc}") from None
        return self.handle(name, data)

    def _handle(self, name: str, data: Any) -> list[ClientEvent]:
        if name == "open":
            sid, key, namespace = data["sid"], data["key"], data["namespace"]
            interval, timeout = data["pingInterval"] / 1000, data["pingTimeout"] / 1000
            rooms = tuple(data.get("rooms", ()))
            if not all(isinstance(x, str) for x in (sid, key, namespace, *rooms)):
                raise TypeError("sid, key, namespace and rooms must be strings")
            if not key:
                raise ValueError("the session key is empty")
            resumed = self.sid is not None and sid == self.sid
            self.sid, self.key, self.namespace = sid, key, namespace
            self.ping_interval, self.ping_timeout = interval, timeout
            if resumed:
                self.rooms = set(rooms)
            return [Opened("open", sid, namespace, interval, timeout, rooms, resumed)]
        if name == "recovery":
            gaps = tuple((g["room"], g.get("after")) for g in data["gaps"])
            self.stats.gaps += len(gaps)
            out: list[ClientEvent] = [Recovery("recovery", bool(data["complete"]), int(data["replayed"]), gaps)]
            out += [Gap("gap", room, after, "log_trimmed") for room, after in gaps]
            return out
        if name == "joined":
            self.rooms.add(data["room"])
            self.positions.setdefault(data["room"], data["offset"])
            return []
        if name == "left":
            self.rooms.discard(data["room"])
            self.positions.pop(data["room"], None)
            return []
        if name == "call":
            return [Call("call", str(data["ackId"]), data["event"], data.get("data"))]
        if name == "close":
            reason = data.get("reason", "")
            if not isinstance(reason, str):
                raise TypeError("a close reason must be a string")
            return [Closing("close", reason, bool(data.get("reconnect", True)))]
        return self._room_event(name, data)

    def _room_event(self, name: str, data: Any) -> list[ClientEvent]:
        if not isinstance(data, dict) or "offset" not in data:
            raise ValueError("a room event needs an envelope with an offset")
        room, offset = data["room"], data["offset"]
        seen = self.positions.get(room)
        if seen is not None and parse_offset(offset) <= parse_offset(seen):
            self.stats.duplicates += 1
            return []
        self.positions[room] = offset
        self.stats.received += 1
        return [
            RoomEvent("event", data["event"], data.get("data"), room, offset, data.get("sender"),
                      data.get("clientEventId"), int(data["ts"]))
        ]

    def session_lost(self) -> list[ClientEvent]:
        """The gateway no longer knows our sid: every room may have missed events."""
        lost: list[ClientEvent] = [Gap("gap", room, self.positions.get(room), "session_lost")
                                   for room in sorted(self.rooms)]
        self.stats.gaps += len(lost)
        self.sid = self.key = None
        self.positions.clear()
        return lost


def error_from_body(body: bytes | str | dict[str, Any]) -> GatewayError:
    """A problem body (HTTP) or error ack (Socket.IO) as the typed error with its ``code``."""
    if not isinstance(body, dict):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            return GatewayError(f"unreadable error body: {body!r:.200}")
    if not isinstance(body, dict):
        return GatewayError(f"unreadable error body: {body!r:.200}")
    return error_from_wire(body)


TRANSIENT = frozenset({"broker_unavailable", "internal_error"})
"""Error codes worth retrying; every other code is final for that request."""
SESSION_GONE = frozenset({"unknown_sid", "session_expired"})
"""Error codes that mean: open a new session (and report the gap)."""

_FRAMES = frozenset({"open", "recovery", "joined", "left", "close"})


def is_frame(event: str, data: Any) -> bool:
    """On Socket.IO: a gateway frame or a room event (an envelope), as opposed to a server call."""
    return event in _FRAMES or (isinstance(data, dict) and "offset" in data and "room" in data and "event" in data)
