"""The client's protocol core: pure, no I/O, no event loop.

Every client (asyncio or blocking, SSE + POST or Socket.IO) is a thin driver over
these pieces:

- ``SseParser``     bytes of a ``text/event-stream`` in, frames out (decoded and checked by
                    ``gateway.wire.frames.decode_frame``, the gateway's own definition);
- ``ClientState``   one session's view: sid, private key, cursor, per-room offsets, the outbox;
                    gateway frames in, typed ``ClientEvent``s out (duplicates dropped,
                    gaps surfaced), malformed frames refused with ``ProtocolError``;
- ``Outbox``        every publish/emit with its ``clientEventId`` until acked;
- ``Backoff``       reconnect delays with exponential growth and full jitter;
- ``token_value``   the connect credential, from a string or a callback asked each attempt.

Binary payloads: an SSE frame's or answer's marker objects (``{"_rtgw_binary": "<base64>"}``)
reach the application as ``bytes``, as Socket.IO's attachments do; ``request_body`` writes a
request's ``bytes`` as markers (``gateway/wire/binary.py``).

The ``sid`` is the session's public id (others see it as ``sender``); the ``key`` the
``open`` frame carries is private and is what proves ownership: it goes in the
``X-Session-Key`` header of every SSE request, first in the resume cursor
(``<sid>:<key>;<room>=<offset>,...``) and in Socket.IO's resume ``auth``.

A frame the client cannot use is skipped and counted (``Stats.malformed``), never
fatal: a bad frame sits in a room's delivery log and comes back with every replay, so
anything else (a reconnect, an exception out of the reader) would trap the client in
a loop. Whatever a frame says, what the client keeps stays valid: names by the wire
format's rule, offsets as ASCII digits, so the resume cursor it builds is one the
gateway reads.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import orjson

from gateway.wire import binary, frames
from gateway.wire.envelope import RESERVED_EVENTS, is_name
from gateway.wire.errors import GatewayError, error_from_wire
from gateway.wire.offsets import OFFSET_RE, format_cursor, is_room, parse_offset

# Names, offsets, the cursor and the reserved event names are the wire format's
# (``gateway.wire``): one spelling, shared with the gateway.

# -- the connect credential ----------------------------------------------------------

TokenSource: TypeAlias = str | Callable[[], str | Awaitable[str | None] | None] | None
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
    """A room event. A ``volatile`` one has no offset (None): it was not logged, moves no resume
    position and is never replayed."""

    kind: Literal["event"]
    event: str
    data: Any
    room: str
    offset: str | None
    sender: str | None
    client_event_id: str | None
    ts: int
    volatile: bool = False


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """Members entered (``change="join"``) or left (``"leave"``) ``room``: the gateway's
    ``presence.join`` / ``presence.leave``, on namespaces that send them. ``members`` are
    ``{"sid", "user", "claims"}``. A hint for a live view: ``presence(room)`` is the truth."""

    kind: Literal["presence"]
    room: str
    change: Literal["join", "leave"]
    members: tuple[dict[str, Any], ...]


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


@dataclass(frozen=True, slots=True)
class TransportChanged:
    """The session is carried by another transport now (``transport="auto"``): the first one
    once it opens, then every move; a move loses and repeats nothing."""

    kind: Literal["transport"]
    name: str  # "sse", "sse-poll", "websocket" or "polling"


ClientEvent = Opened | RoomEvent | PresenceChange | Recovery | Gap | Call | Closing | TransportChanged


class ProtocolError(ValueError):
    """The server sent a frame this client cannot read; the frame is skipped."""


class ConnectionLost(Exception):
    """The connection dropped under a request; it is retried after reconnecting."""


class UnusableStream(ConnectionLost):
    """The gateway answered a connect, but what came gave no usable ``open`` (the stream
    ended, or its first frame was malformed). A few in a row while resuming, and the client
    starts a new session instead (``UNUSABLE_RESUMES``): resuming again would replay the same."""


def worth_logging(count: int) -> bool:
    """Log the 1st, 2nd, 4th, 8th... malformed frame: a flood of them is a few lines, not a flood."""
    return count > 0 and count & (count - 1) == 0


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
    overlong: bool = False  # a line of it was over ``SseParser.max_line``: cut, so unusable


MAX_LINE = 16 * 1024 * 1024
"""Bytes in one event-stream line beyond which it is thrown away (the gateway's default
``maxPayload`` is 1 MB): a stream must not make its reader hold unbounded memory."""

_LINE_END = re.compile(rb"\r\n|\r|\n")


class SseParser:
    """Incremental ``text/event-stream`` parser, by the WHATWG algorithm: every line ending
    (``\\r\\n``, ``\\r``, ``\\n``, also split across chunks), a leading BOM dropped, ``id``
    values with NUL ignored, ``retry`` ignored (the client owns its reconnect schedule),
    and a frame without ``data`` not dispatched.

    ``feed`` returns completed frames; comment lines (``: ping``) only bump ``heard``,
    which a driver uses as its liveness clock. A line longer than ``max_line`` is thrown
    away as it arrives, and its frame comes out with ``overlong`` set, for the reader to
    skip and count: the stream goes on.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._partial: list[bytes] = []  # the current line so far
        self._partial_size = 0
        self._skip_lf = False  # the last chunk ended in "\r": a "\n" next is the same line end
        self._discarding = False  # the current line went over max_line: its bytes are dropped
        self._started = False  # past the first line (where a BOM may be)
        self._frame = SseFrame()
        self._data: list[str] = []
        self.heard = 0

    def feed(self, chunk: bytes) -> list[SseFrame]:
        self.heard += 1
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        # Splitting on "\n" alone is 3x faster than the regular expression, and the gateway's way.
        pieces = chunk.split(b"\n") if b"\r" not in chunk else _LINE_END.split(chunk)
        frames: list[SseFrame] = []
        if len(pieces) > 1:
            self._skip_lf = chunk[-1:] == b"\r"
            lines = pieces[:-1]
            if self._discarding:
                self._discarding = False  # the end of the overlong line: nothing of it is kept
                del lines[0]
            elif self._partial:
                lines[0] = b"".join(self._partial) + lines[0]
            self._partial, self._partial_size = [], 0
            if not self._started and lines:
                self._started = True
                lines[0] = lines[0].removeprefix(b"\xef\xbb\xbf")
            for raw in lines:
                self._line(raw, frames)
        rest = pieces[-1]
        if rest and not self._discarding:
            self._partial.append(rest)
            self._partial_size += len(rest)
            if self._partial_size > self.max_line:
                self._partial, self._partial_size = [], 0
                self._discarding = True
                self._frame.overlong = True
        return frames

    def _line(self, raw: bytes, frames: list[SseFrame]) -> None:
        if not raw:
            frame, data = self._frame, self._data
            self._frame, self._data = SseFrame(), []
            if data or frame.overlong:
                frame.data = "\n".join(data)
                frames.append(frame)
            return
        if len(raw) > self.max_line:  # the same as when it comes in pieces: thrown away
            self._frame.overlong = True
            return
        if raw[:1] == b":":
            return
        line = raw.decode("utf-8", "replace")
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._frame.event = value or "message"
        elif name == "id" and "\0" not in value:
            self._frame.id = value


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
    # Volatile publishes and emits not sent: no connection at the time, or lost under them.
    volatile_dropped: int = 0
    # Library calls (closing a response, a WebSocket close handshake, python-engineio's loops)
    # that did not finish within their bound and were left behind (``rtclient._bounds``).
    abandoned: int = 0


@dataclass(slots=True)
class ClientState:
    """What a client knows about its session, whatever carries it."""

    namespace: str = "/"
    sid: str | None = None
    key: str | None = None  # the session's private key, from ``open``: never shown to others
    # The rooms the gateway confirmed (``joined``/``left``, a resumed ``open``); the rooms the
    # application asked for are ``rtclient.reconnect.Reconnector.wanted``.
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

        Raises ``ProtocolError`` if the frame is malformed, and then changes nothing but
        the count (``stats.malformed``) and, for a room event that cannot be delivered but
        has a good room and offset, that room's position: a resume must not ask for it again.
        """
        try:
            return self._handle(name, data)
        except ProtocolError:
            self.stats.malformed += 1
            raise
        except Exception as exc:  # whatever a frame holds, it is one frame skipped
            self.stats.malformed += 1
            raise ProtocolError(f"malformed {name!r:.140} frame: {exc!r:.300}") from None

    def handle_raw(self, name: str, raw: str) -> list[ClientEvent]:
        return self.handle(name, self._json(name, raw))

    def handle_frame(self, frame: SseFrame) -> list[ClientEvent]:
        """One event-stream frame (``SseParser``'s output)."""
        return self.handle(frame.event, self.decode_frame(frame))

    def decode_frame(self, frame: SseFrame) -> Any:
        """An event-stream frame's data as JSON; ``ProtocolError`` (counted) if it cannot be."""
        if frame.overlong:
            self.stats.malformed += 1
            raise ProtocolError(f"{frame.event!r:.140} frame with a line over the parser's limit: skipped")
        return self._json(frame.event, frame.data)

    def _json(self, name: str, raw: str) -> Any:
        try:
            return binary.loads(raw) if raw else None  # binary markers as bytes, as Socket.IO gives them
        except (orjson.JSONDecodeError, GatewayError) as exc:  # GatewayError: a malformed binary marker
            self.stats.malformed += 1
            raise ProtocolError(f"{name!r:.140} frame is not JSON: {exc}") from None

    def _handle(self, name: str, data: Any) -> list[ClientEvent]:
        # An envelope is a room event whatever the frame's name: a frame named like one of the
        # gateway's own but carrying an envelope (an event named "close" or "left" that got into
        # a log) must not close the connection or drop a room.
        if is_envelope(data):
            return self._room_event(name, data)
        try:
            frame = frames.decode_frame(name, data)
        except frames.FrameError as exc:
            raise ProtocolError(str(exc)) from None
        match frame:
            case frames.Open():
                return self._open(frame)
            case frames.Recovery():
                self.stats.gaps += len(frame.gaps)
                out: list[ClientEvent] = [Recovery("recovery", frame.complete, frame.replayed, frame.gaps)]
                return out + [Gap("gap", room, after, "log_trimmed") for room, after in frame.gaps]
            case frames.Joined():
                self.joined(frame.room, frame.offset)
                return []
            case frames.Left():
                self.left(frame.room)
                return []
            case frames.Call():
                return [Call("call", frame.ack_id, frame.event, frame.data)]
            case frames.Close():
                return [Closing("close", frame.reason, frame.reconnect)]

    def joined(self, room: str, offset: str) -> None:
        """The gateway confirmed ``room`` (its ``joined`` frame, or the join's ack)."""
        self.rooms.add(room)
        self.positions.setdefault(room, offset)

    def left(self, room: str) -> None:
        """The gateway confirmed leaving ``room`` (its ``left`` frame, or the leave's ack:
        on Socket.IO the two are handled in separate tasks, so either may come first)."""
        self.rooms.discard(room)
        self.positions.pop(room, None)

    def _open(self, frame: frames.Open) -> list[ClientEvent]:
        interval, timeout = frame.ping_interval / 1000, frame.ping_timeout / 1000
        resumed = self.sid is not None and frame.sid == self.sid
        self.sid, self.key, self.namespace = frame.sid, frame.key, frame.namespace
        self.ping_interval, self.ping_timeout = interval, timeout
        if resumed:
            self.rooms = set(frame.rooms)
        return [Opened("open", frame.sid, frame.namespace, interval, timeout, frame.rooms, resumed)]

    def _room_event(self, name: str, data: dict[str, Any]) -> list[ClientEvent]:
        room, offset, event = data["room"], data["offset"], data["event"]
        if offset is None and data.get("volatile") is True:
            return self._volatile_event(name, data)
        at = OFFSET_RE.match(offset) if isinstance(offset, str) else None
        if at is None or not is_room(room):
            raise ProtocolError(f"a room event needs a room name and an offset: {room!r:.140} {offset!r:.60}")
        # A room the client has not seen a ``joined`` for is still delivered: the gateway sends
        # a room's events only to its members, and one may come just before the ``joined``.
        seen = self.positions.get(room)
        if seen is not None and (int(at[1]), int(at[2])) <= parse_offset(seen):
            self.stats.duplicates += 1
            return []
        sender, ceid, ts = data.get("sender"), data.get("clientEventId"), data.get("ts")
        problem = (
            "its event is not a name" if not is_name(event)
            else "its event is reserved" if event in RESERVED_EVENTS
            else "the frame's name is not its event" if name != event
            else "sender, clientEventId or ts has the wrong type"
            if not (_str_or_none(sender) and _str_or_none(ceid) and type(ts) is int)
            else None
        )
        if problem is not None:
            # Consumed, not delivered: a resume starts after it rather than bringing it back.
            self.positions[room] = offset
            raise ProtocolError(f"room event {event!r:.140} in {room!r} at {offset} skipped: {problem}")
        self.positions[room] = offset
        self.stats.received += 1
        return [RoomEvent("event", event, data.get("data"), room, offset, sender, ceid, data["ts"])]

    def _volatile_event(self, name: str, data: dict[str, Any]) -> list[ClientEvent]:
        """A volatile room event: delivered as it comes, no offset, no position moved."""
        room, event, sender = data["room"], data["event"], data.get("sender")
        if not is_room(room) or name != event:
            raise ProtocolError(f"volatile event {event!r:.140} in {room!r:.140} skipped: bad room or name")
        if event in _PRESENCE and sender is None:
            members = data.get("data", {}).get("members") if isinstance(data.get("data"), dict) else None
            if not isinstance(members, list) or not all(isinstance(m, dict) and is_name(m.get("sid")) for m in members):
                raise ProtocolError(f"{event} in {room!r:.140} skipped: members must be a list of {{sid, user, claims}}")
            self.stats.received += 1
            return [PresenceChange("presence", room, _PRESENCE[event], tuple(members))]
        ceid, ts = data.get("clientEventId"), data.get("ts")
        if not is_name(event) or event in RESERVED_EVENTS or not (
            _str_or_none(sender) and _str_or_none(ceid) and type(ts) is int
        ):
            raise ProtocolError(f"volatile event {event!r:.140} in {room!r:.140} skipped: bad name or field types")
        self.stats.received += 1
        return [RoomEvent("event", event, data.get("data"), room, None, sender, ceid, ts, volatile=True)]

    def session_lost(self) -> list[ClientEvent]:
        """The gateway no longer knows our sid: every room may have missed events."""
        lost: list[ClientEvent] = [Gap("gap", room, self.positions.get(room), "session_lost")
                                   for room in sorted(self.rooms)]
        self.stats.gaps += len(lost)
        self.sid = self.key = None
        self.rooms.clear()  # a new session is in nothing until it joins
        self.positions.clear()
        return lost


_PRESENCE: dict[str, Literal["join", "leave"]] = {"presence.join": "join", "presence.leave": "leave"}


def _str_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def is_envelope(data: Any) -> bool:
    """A room event envelope, by its shape (no frame of the gateway's own has these three keys)."""
    return isinstance(data, dict) and "offset" in data and "room" in data and "event" in data


def error_from_body(body: bytes | str | dict[str, Any]) -> GatewayError:
    """A problem body (HTTP) or error ack (Socket.IO) as the typed error with its ``code``."""
    if not isinstance(body, dict):
        try:
            body = orjson.loads(body)
        except (orjson.JSONDecodeError, TypeError):
            return GatewayError(f"unreadable error body: {body!r:.200}")
    if not isinstance(body, dict):
        return GatewayError(f"unreadable error body: {body!r:.200}")
    try:
        return error_from_wire(body)
    except TypeError:  # a detail key that is not a keyword (a proxy's body, say)
        return GatewayError(f"unreadable error body: {body!r:.200}")


JSON_BODY = {"Content-Type": "application/json"}
"""The header every POST with a body carries (the gateway refuses anything else: 415)."""


def request_body(body: dict[str, Any]) -> bytes:
    """A request's POST body: JSON, its ``bytes`` as binary marker objects (``gateway/wire/binary.py``),
    which the gateway hands on as bytes."""
    return binary.dumps(body)


def result_from_body(body: bytes) -> Any:
    """The ``result`` of an ``{"ok": true, "result": ...}`` answer (None for an empty body)."""
    if not body:
        return None
    try:
        answer = binary.loads(body)
    except (orjson.JSONDecodeError, GatewayError):
        answer = None
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        raise ProtocolError(f"unexpected answer {body!r:.200}")
    return answer.get("result")


TRANSIENT = frozenset({"broker_unavailable", "internal_error", "rate_limited", "session_closed"})
"""Error codes worth retrying (``session_closed``: sent on a Socket.IO connection the session had
just left, so not done); every other code is final for that request."""
MAX_RETRY_AFTER = 60.0
"""The longest wait a ``retryAfter`` is followed to (a larger one is taken as this)."""


def retry_after(error: BaseException) -> float | None:
    """The wait the gateway asked for before trying again: ``retryAfter`` seconds of a
    ``rate_limited`` refusal (HTTP 429, or a Socket.IO error ack or ``connect_error``), or None."""
    if not isinstance(error, GatewayError) or error.code != "rate_limited":
        return None
    value = error.detail.get("retryAfter")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        return 1.0  # rate limited, and not told for how long: a polite second
    return min(float(value), MAX_RETRY_AFTER)


def retry_delay(error: BaseException, refusals: int, backoff: Backoff, rng: random.Random | None = None) -> float:
    """How long to wait before sending a refused request again (its ``refusals``-th refusal
    in a row, from 1). Without a ``retryAfter``, ``backoff.base``. With one, at least that,
    plus jitter that doubles with each refusal (up to ``backoff.cap``): a client with many
    requests refused at once does not send them all back at the same instant."""
    asked = retry_after(error)
    if asked is None:
        return backoff.base
    spread = min(backoff.cap, max(asked, backoff.base / 4) * 2 ** min(max(refusals - 1, 0), 10))
    return min(MAX_RETRY_AFTER, asked + (rng or random).uniform(0, spread))
SESSION_GONE = frozenset({"unknown_sid", "session_expired"})
"""Error codes that mean: open a new session (and report the gap)."""
RESUME_REFUSED = frozenset({"bad_last_event_id", "offset_from_future"})
"""A resume refused for its positions: asking again would get the same answer, so the
client opens a new session (and reports the gap) rather than retrying for ever."""
UNUSABLE_RESUMES = 3
"""Resumes in a row that the gateway answered but that gave no usable ``open`` (the stream
ended, or its open frame was malformed) before the client stops resuming and starts over."""

def emit_meta(body: dict[str, Any]) -> dict[str, Any]:
    """On Socket.IO, an application event travels as ``emit(event, data, meta)``: the request's
    other fields (``clientEventId``, ``volatile``) in ``meta``."""
    return {"clientEventId": body.get("clientEventId"), **({"volatile": True} if body.get("volatile") else {})}


def presence_body(room: str, cursor: str | None) -> dict[str, Any]:
    """A presence request's body: the room, and the cursor of the page wanted (none: the first)."""
    return {"room": room} if cursor is None else {"room": room, "cursor": cursor}


def is_frame(event: str, data: Any) -> bool:
    """On Socket.IO: a gateway frame or a room event (an envelope), as opposed to a server call
    (which arrives under its own event name, answered through the Socket.IO ack)."""
    return (event in frames.FRAMES and event != frames.Call.NAME) or is_envelope(data)
