"""SSE + POST: one ``text/event-stream`` for server->client, POSTs for client->server.

Wire format: ``docs/protocol.md``. This module only translates HTTP to hub calls.

The event stream is written straight from the fan-out: a room event is framed
once per broadcast (``_tail``), each subscriber adds its own ``id:`` cursor, and
the chunk goes to uvicorn's transport in the same loop (``BodyWriter``; through the
ASGI ``send`` and ``eager.run_eagerly`` on any other server). The first event of a
loop iteration is written as it is framed; later ones leave in one write per stream
at the iteration's end. No task, queue or timer per connection: one pinger for all
streams keeps proxies and client watchdogs fed, and frames wait in a bounded list
only while a subscriber's socket is full, to leave in one write when it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi import Request as HttpRequest
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.core.hub import Gateway
from gateway.core.limits import Lease, client_address
from gateway.core.rooms import Room
from gateway.core.sessions import Session
from gateway.fences.asyncio_eager import run_eagerly
from gateway.fences.uvicorn_transport import BodyWriter, abort, body_writer, pause_until_written
from gateway.messages import (
    AckRequest,
    EmitRequest,
    JoinRequest,
    LeaveRequest,
    PresenceRequest,
    PublishRequest,
    Schema,
)
from gateway.problems import documented
from gateway.wire import binary, frames
from gateway.wire.envelope import Envelope, sse_safe
from gateway.wire.errors import BadLastEventId, PayloadTooLarge, UnsupportedMediaType
from gateway.wire.offsets import format_cursor, parse_cursor
from gateway.wire.requests import Ack, Close, Emit, Join, Leave, Presence, Publish, Request, decode_request

NAME = "sse"
_MOVES_CURSOR = frozenset({frames.Open.NAME, frames.Joined.NAME, frames.Left.NAME})
PING = b": ping\n\n"
PING_SLICES = 20  # a pinger round looks at the streams in this many parts (SseTransport._ping_forever)
# Chunks this large are written, then followed by an empty body that returns only once the
# transport's buffer is below its high-water mark (uvicorn's: 64 KiB); see _send_drained.
DRAINED_AFTER = 64 * 1024
DRAIN: dict[str, Any] = {"type": "http.response.body", "body": b"", "more_body": True}


def _tail(envelope: Envelope, wire: bytes) -> bytes:
    """A room event's frame after the subscriber's part of the ``id:`` line."""
    return (
        envelope.room.encode() + b"=" + envelope.offset.encode()
        + b"\nevent: " + envelope.event.encode() + b"\ndata: " + wire + b"\n\n"
    )


class SseChannel:
    """One event stream: frames are written at once, or wait (bounded) while the socket is full."""

    transport = NAME
    __slots__ = (
        "_byte_limit",
        "_clock",
        "_draining",
        "_flying",
        "_frames",
        "_gateway",
        "_limit",
        "_node_limit",
        "_pending",
        "_receive",
        "_rest",
        "_rest_key",
        "_send",
        "_streams",
        "_volatile_limit",
        "_writer",
        "cut",
        "ended",
        "held",
        "last_write",
        "payloads",
        "poll",
        "session",
        "writing",
    )

    def __init__(self, gateway: Gateway, streams: SseTransport, *, poll: bool = False) -> None:
        self._gateway, self._streams = gateway, streams
        self._limit = gateway.settings.session_queue_size
        # Bytes queued or being written (a replay aside), kept as frames come and go: the
        # byte bound costs an addition per frame, not a sum per write.
        self._byte_limit = gateway.settings.session_queue_bytes
        self._node_limit = gateway.settings.output_max_bytes  # over every stream: SseTransport.held
        self._volatile_limit = gateway.settings.volatile_backlog_bytes
        self.held = 0
        self._flying = 0  # the part of ``held`` in the write under way
        self._clock = asyncio.get_running_loop().time
        self.session: Session | None = None
        self.cut: str | None = None
        self.payloads = 0  # room events and calls sent: what a poll waits for
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_write = self._clock()  # when the last write began
        self._send: Send | None = None  # set once the response has started
        self._writer: BodyWriter | None = None  # the direct way to the socket, where the server has one
        self._receive: Receive | None = None
        # What the next write joins. A room event is two items, its own id line and the
        # broadcast's shared rest, joined only when written: a large event to many streams
        # is then copied once per stream as each is written, not all at once beforehand.
        self._pending: list[bytes] = []
        self._frames = 0  # frames in ``_pending``: what session_queue_size bounds
        self._draining: dict[str, Any] | None = None  # a large write's message, until written
        self.writing = False  # a write is under way: it only lasts past the call when the socket is full
        self.poll = poll
        # The cursor minus one room's position, kept between deliveries to that room:
        # a busy room then costs one concatenation per delivery, not a rebuilt cursor.
        self._rest = b""
        self._rest_key: tuple[str, int, int] | None = None

    # -- what the hub calls (sessions.Channel) ------------------------------

    def deliver(self, session: Session, envelope: Envelope, wire: bytes) -> None:
        self.push(session, envelope, _tail(envelope, wire))

    def push(self, session: Session, envelope: Envelope, tail: bytes) -> None:
        """``deliver`` with the broadcast's shared part of the frame already built."""
        self._put(self._head(session, envelope), tail)

    def offer(self, frame: bytes) -> None:
        """A volatile event's frame (no ``id:``: the cursor does not move), written only if the
        stream is ready for it: started, its socket took the last write, and less than
        ``volatile_backlog_bytes`` waiting (an idle stream takes any one). Else dropped, counted."""
        if self.cut is None and self._send is not None and not self.writing and (
            not self.held or self.held + len(frame) <= self._volatile_limit
        ):
            self.payloads += 1
            self._put(frame)
        else:
            self._gateway.metrics.dropped.labels("volatile_not_ready").inc()

    def replay(self, session: Session, envelopes: list[Envelope]) -> None:
        if envelopes:
            # Not counted against the byte bound: the log's own bounds bound it, and a live
            # event arriving while it is written must not cut the session into resuming again.
            self._put(b"".join(self._frame(session, e, _tail(e, e.encode())) for e in envelopes), counted=False)

    def _frame(self, session: Session, envelope: Envelope, tail: bytes) -> bytes:
        return self._head(session, envelope) + tail

    def _head(self, session: Session, envelope: Envelope) -> bytes:
        """The frame's ``id:`` line up to this room's position (``_tail`` is the rest)."""
        self.payloads += 1
        room, positions = envelope.room, session.positions
        positions[room] = envelope.offset
        key = (room, id(positions), len(positions))
        if key != self._rest_key:
            others = {r: o for r, o in positions.items() if r != room}
            self._rest = b"id: " + format_cursor(session.sid, session.key, others).encode() + (b"," if others else b"")
            self._rest_key = key
        return self._rest

    def send(self, event: str, data: Any) -> None:
        self._rest_key = None  # joined/left change the room set
        # open and joined move the cursor, so they carry an id a reconnect can resume from.
        head = b""
        if self.session is not None and event in _MOVES_CURSOR:
            session = self.session
            head = b"id: " + format_cursor(session.sid, session.key, session.positions).encode() + b"\n"
        if event == frames.Open.NAME:
            head += b"retry: 1000\n"
        self._put(head + b"event: " + event.encode() + b"\ndata: " + sse_safe(binary.dumps(data)) + b"\n\n")

    def call(self, ack_id: str, event: str, data: Any) -> None:
        self.payloads += 1
        frame = frames.Call(ack_id, event, data)
        self.send(frame.NAME, frame.encode())

    def close(self, reason: str) -> None:
        """End the stream once what is already queued (a ``close`` frame) is written."""
        if self.cut is None:
            self.cut = reason
        if self._send is not None and not self.writing and not self._pending:
            self._end()

    # -- writing --------------------------------------------------------------

    def ping(self) -> None:
        """Keep proxies and the client's dead-stream watchdog fed on a quiet stream."""
        self._put(PING)

    def write(self, frame: bytes, tail: bytes = b"", *, counted: bool = True) -> None:
        """Queue a frame another module framed (a multiplexed session's: ``sse_multiplex.py``),
        bounded as this stream's own; ``tail`` is a broadcast's shared part, as in ``push``."""
        self._put(frame, tail, counted)

    def _put(self, frame: bytes, tail: bytes = b"", counted: bool = True) -> None:
        if self.cut is not None:
            return
        size = len(frame) + len(tail) if counted else 0
        if self._send is None or self.writing:
            # Waiting for the response to start or the socket to drain: bounded in frames
            # and in bytes (what waits plus what is being written), its own and the node's.
            if self._frames >= self._limit or (size and (
                (self.held and self.held + size > self._byte_limit)  # holding nothing, any one frame fits
                or self._streams.held + size > self._node_limit
            )):
                self.stall()
                return
        elif self._streams.direct:
            if not self._pending and self._writer is not None:
                self._write_now(frame, tail, size)
                return
            self._pending.append(frame)  # the chunk of one write; not waiting, so not held
            if tail:
                self._pending.append(tail)
            self.held += size
            self._streams.held += size
            self.flush()
            return
        elif not self._pending:
            self._streams.flush_soon(self)
        self.held += size
        self._streams.held += size
        self._frames += 1
        self._pending.append(frame)
        if tail:
            self._pending.append(tail)

    def flush(self) -> None:
        """Write what this loop iteration queued, as one chunk."""
        if self._pending and self._send is not None and not self.writing:
            chunk = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            self._frames = 0
            self._flying = self.held  # before the write: it may finish inside the call
            if self._write(chunk) and self._streams.held > self._node_limit:
                self.stall()  # its socket is full and the node holds too much: this one goes

    def _write_now(self, frame: bytes, tail: bytes, size: int) -> None:
        """``flush`` of one frame to a stream with nothing queued or being written: no list,
        no join, and nothing to count unless its socket does not take it all at once."""
        writer = self._writer
        assert writer is not None
        self.last_write = self._clock()
        try:
            taken = writer.write(frame, tail)
        except ConnectionError:
            self._lost("stream closed")
            return
        if not taken:  # held, as by ``flush``, until the server has written it
            self.writing = True
            self.held += size
            self._streams.held += size
            self._flying = self.held
            run_eagerly(writer.drained(), self._written)
            if self._streams.held > self._node_limit:
                self.stall()
        elif self.poll and self.payloads:
            self._end()

    def _write(self, chunk: bytes) -> bool:
        """Write ``chunk``; True while the write waits for the socket to drain."""
        assert self._send is not None
        self.writing = True
        self.last_write = self._clock()
        writer = self._writer
        if writer is not None:
            try:
                taken = writer.write(chunk)
            except ConnectionError as error:
                self._written(None, error)
                return False
            if taken:
                self._written(None, None)
            else:  # the socket is full: held until the server has written it all
                run_eagerly(writer.drained(), self._written)
            return self.writing
        body = {"type": "http.response.body", "body": chunk, "more_body": True}
        if len(chunk) < DRAINED_AFTER:
            run_eagerly(self._send(body), self._written)
        else:
            self._draining = body
            run_eagerly(self._send_drained(body), self._written)
        return self.writing

    async def _send_drained(self, body: dict[str, Any]) -> None:
        # A server's send returns once the chunk is in the transport's buffer; uvicorn waits
        # for that buffer to drain only before the *next* write. A large chunk to a client
        # that stopped reading would sit there, held but no longer counted: an empty body
        # waits for the drain, so ``held`` covers it until the client has taken it (100 slow
        # readers, 5 events of 1 MB: +100 MB per event uncounted without it).
        assert self._send is not None
        await self._send(body)
        await self._send(DRAIN)

    def _written(self, _: None, error: BaseException | None) -> None:
        self.writing = False
        self.held -= self._flying
        self._streams.held -= self._flying
        self._flying = 0
        self._draining = None
        if error is not None:
            self._lost("stream closed")
        elif self._pending:
            self.flush()
        elif self.cut is not None or (self.poll and self.payloads):
            self._end()

    def stall(self) -> None:
        """Cut this stream as a slow consumer (counted in ``gateway_dropped_total``).

        Cut, not silently skipped: the session resumes from the delivery log when
        the client reconnects, and learns of a gap if the log no longer holds it all.
        The connection is reset, not closed: a graceful close would keep what it did not
        read in the write buffer for as long as it stays connected (``connection.py``).
        """
        self._gateway.metrics.dropped.labels("slow_consumer").inc()
        if self._send is not None:
            abort(self._send)  # first: the server then sees the client gone when the stream ends
        self._lost("slow_consumer")

    def _lost(self, reason: str) -> None:
        if self.cut is None or self.cut == "shutdown":
            self.cut = reason
        self._pending.clear()
        self._frames = 0
        self._streams.held -= self.held
        self.held = self._flying = 0
        if self._draining is not None:
            # The server has its own copy (and frees it with the connection); ours need not
            # wait for the drain that will never come (100 readers cut: 100 MB sooner).
            self._draining["body"] = b""
            self._draining = None
        self._end()
        if self.session is not None:
            self._gateway.detach(self.session, self, reason)

    def _end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)

    # -- the response's side ---------------------------------------------------

    def start(self, send: Send, receive: Receive) -> None:
        """The response has started: write what waited (one chunk) and watch for the client leaving."""
        self._send, self._receive = send, receive
        if pause_until_written(send):  # ``writing`` then lasts as long as the server holds our bytes
            self._writer = body_writer(send)
        self._listen()
        if self._pending:
            self.flush()
        elif self.cut is not None:
            self._end()

    def _listen(self) -> None:
        assert self._receive is not None
        run_eagerly(self._receive(), self._heard)

    def _heard(self, message: MutableMapping[str, Any] | None, error: BaseException | None) -> None:
        if error is None and message is not None and message["type"] != "http.disconnect":
            self._listen()  # the (empty) request body: wait for the next message
        elif not self.ended.done():
            self._lost("stream closed")


_HOSTED = "rtgateway.event_streams"  # scope key: where EventStreamHost collects the streams to run


class EventStreamResponse(Response):
    """The ``text/event-stream`` of one ``SseChannel``; the session goes live once it has started.

    The head goes out through the middleware stack (CORS and the like add their
    headers); the body is then handed to ``EventStreamHost`` when it is there.
    """

    media_type = "text/event-stream"

    def __init__(
        self, gateway: Gateway, channel: SseChannel, streams: SseTransport, wait: float, lease: Lease | None = None
    ) -> None:
        # No ``Response.__init__``: without a body it would declare Content-Length: 0.
        self.status_code, self.background = 200, None
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self._gateway, self._channel, self._streams, self._wait = gateway, channel, streams, wait
        self._lease = lease  # this stream's place in its address's connection count

    def abandon(self) -> None:
        """The stream will never run (the client left before the head went out): let go of
        its session (recoverable, as after any lost connection) and its connection count."""
        if self._channel.session is not None:
            self._gateway.detach(self._channel.session, self._channel, "stream closed")
        if self._lease is not None:
            self._lease.release()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        except BaseException:
            self.abandon()
            raise
        self.raw_headers = []  # sent: not worth keeping for the life of the stream
        hosted = scope.get(_HOSTED)
        if hosted is not None:
            hosted.append(self)
        else:
            await self.stream(receive, send)

    async def stream(self, receive: Receive, send: Send) -> None:
        """Write the body until the client leaves, the session closes or the gateway stops."""
        gateway, channel = self._gateway, self._channel
        session = channel.session  # None: a multiplexed carrier, whose sessions come and go (sse_multiplex.py)
        timer = None
        try:
            if session is not None:
                gateway.activate(session)  # open (+ replay, recovery) waits in the channel: one write
            channel.start(send, receive)
            if channel.poll:
                # A buffering proxy flushes a response only when it ends: end it as soon
                # as there is something to hand over, else after one ping interval.
                timer = asyncio.get_running_loop().call_later(self._wait, channel.close, "poll")
            else:
                self._streams.watch(channel)
            await channel.ended
        finally:
            if timer is not None:
                timer.cancel()
            self._streams.unwatch(channel)
            if session is not None:
                gateway.detach(session, channel, channel.cut or "stream closed")
            if self._lease is not None:
                self._lease.release()
        if channel.cut not in ("stream closed", "slow_consumer"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": b"", "more_body": False}),
                    gateway.settings.ping_timeout,
                )


class EventStreamHost:
    """The outermost ASGI layer: runs the event streams the SSE route opened, once routing has returned.

    The route does the handshake inside FastAPI (validation, middleware, errors as
    problem bodies, the response head); a stream then lasts hours, and run from
    here its connection holds uvicorn's objects and the session, not the frames and
    exit stacks of the routing and middleware that opened it (~13 KB per idle
    connection, measured). Its body chunks go to the server's own ``send`` too: no
    middleware rewrites an event stream, and skipping four wrappers per delivery
    cut the CPU per delivery by about a quarter.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        hosted: list[EventStreamResponse] = []
        given = list(scope)
        scope[_HOSTED] = hosted
        try:
            await self.app(scope, receive, send)
        except BaseException:
            for response in hosted:  # its head went out, then something failed: it never runs
                response.abandon()
            raise
        if hosted:
            _forget_routing(scope, given)
            del given
            await hosted[0].stream(receive, send)


def _forget_routing(scope: Scope, given: list[str]) -> None:
    """Drop what routing added to ``scope`` (route, endpoint, exit stacks): the server
    keeps the scope as long as the connection, and the stream needs none of it."""
    kept = {key: scope[key] for key in given}
    scope.clear()  # frees the table routing grew; deleting keys would not
    scope.update(kept)


class SseTransport:
    """Room fan-out over event streams, and the one pinger that serves them all."""

    name = NAME

    def __init__(self) -> None:
        self.streams: set[SseChannel] = set()
        # Channels with frames queued in this loop iteration: written together at its
        # end, so events published in one iteration leave in one write per stream.
        self._dirty: list[SseChannel] = []
        self._pinger: asyncio.Task[None] | None = None
        self._ping_interval = self._ping_timeout = 0.0
        self.held = 0  # bytes every stream has queued or being written (each SseChannel.held)
        self.direct = False  # a broadcast is writing each ready stream's frame at once
        self._turn_written = False  # one broadcast has written directly in this loop iteration

    def broadcast(
        self, room: Room, members: dict[str, Session], envelope: Envelope, wire: bytes, skip: str | None
    ) -> None:
        if envelope.volatile:
            frame = b"event: " + envelope.event.encode() + b"\ndata: " + wire + b"\n\n"
            for sid, session in members.items():  # offered, never cut: ``members`` stays as it is
                channel = session.channel
                if sid != skip and isinstance(channel, SseChannel):
                    channel.offer(frame)
            return
        tail = _tail(envelope, wire)
        # The first event of a loop iteration is written to each ready stream as it is framed:
        # the first subscriber's write then waits for no other's framing nor for the next
        # iteration. Later ones in the same iteration are queued, to leave in one write per
        # stream at its end (a saturated node coalesces rather than writing every event).
        self.direct = not self._turn_written
        if self.direct:
            self._turn_written = True
            asyncio.get_running_loop().call_soon(self._next_turn)
        try:
            # A copy: a subscriber cut as a slow consumer leaves ``members`` mid-loop.
            for sid, session in list(members.items()):
                channel = session.channel
                if sid != skip and isinstance(channel, SseChannel):
                    channel.push(session, envelope, tail)
        finally:
            self.direct = False

    def _next_turn(self) -> None:
        self._turn_written = False

    def flush_soon(self, channel: SseChannel) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush)
        self._dirty.append(channel)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for channel in dirty:
            channel.flush()

    def configure(self, ping_interval: float, ping_timeout: float) -> None:
        self._ping_interval, self._ping_timeout = ping_interval, ping_timeout

    def watch(self, channel: SseChannel) -> None:
        self.streams.add(channel)
        if self._pinger is None or self._pinger.done():
            self._pinger = asyncio.create_task(self._ping_forever(), name="sse-pinger")

    def unwatch(self, channel: SseChannel) -> None:
        self.streams.discard(channel)

    def pending_bytes(self) -> int:
        """Bytes the streams have queued or being written (``gateway_held_bytes{held="output"}``)."""
        return self.held

    async def _ping_forever(self) -> None:
        """Ping streams quiet for a ping interval; cut those whose write has waited a ping timeout.

        A round (a quarter interval, at most a second) looks at every stream once, a
        ``PING_SLICES``-th of them at a time. Streams written at the same moment (a room
        of everyone got an event) come due together: pinged in one go, 19,500 of them held
        the loop for ~0.4 s (docs/benchmark.md, "100,000 connections on one process"); in
        slices each pause is that much shorter, and a ping is still at most one round late.
        Ends when no stream is left, so a stopped server has no task pending.
        """
        period = min(1.0, self._ping_interval / 4)
        loop = asyncio.get_running_loop()
        while self.streams:
            streams = list(self.streams)
            size = -(-len(streams) // PING_SLICES)
            for first in range(0, len(streams), size):
                await asyncio.sleep(period * size / len(streams))
                now = loop.time()
                for channel in streams[first : first + size]:
                    if channel not in self.streams:
                        continue  # ended since the round began
                    if channel.writing:
                        if now - channel.last_write > self._ping_timeout:
                            channel.stall()
                    elif now - channel.last_write >= self._ping_interval:
                        channel.ping()


_CONNECT_PARAMS = frozenset({"namespace", "token", "sid", "lastEventId"})


def connect_auth(request: HttpRequest, token: str | None, authorization: str | None) -> dict[str, Any]:
    """The middleware's auth payload, as Socket.IO's ``auth``: the token (query or Bearer)
    plus every other query parameter (``?name=Ada`` -> ``{"name": "Ada"}``)."""
    auth: dict[str, Any] = {k: v for k, v in request.query_params.items() if k not in _CONNECT_PARAMS}
    if token is None and authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    if token is not None:
        auth["token"] = token
    return auth


def resume_from(
    cursor: str | None, sid: str | None, key: str | None, max_rooms: int
) -> tuple[str | None, str | None, dict[str, str] | None]:
    """The session a connect resumes, as ``(sid, key, positions)``: its cursor's
    (``Last-Event-ID``), else ``?sid=`` with its key, else none (a new session)."""
    if not cursor:
        return sid, key, None
    cursor_sid, cursor_key, positions = parse_cursor(cursor, max_rooms)
    if sid is not None and sid != cursor_sid:
        raise BadLastEventId("Last-Event-ID belongs to another session than ?sid=")
    return cursor_sid, cursor_key or key, positions


# docs/protocol.md, "cursor": <sid>:<key>;<room>=<offset>,... (documented; parse_cursor enforces it)
CURSOR_PATTERN = r"^[A-Za-z0-9_.@~-]{1,128}(:[A-Za-z0-9_.@~-]{1,128})?;([A-Za-z0-9_.:@~*-]{1,128}=[0-9]+-[0-9]+(,[A-Za-z0-9_.:@~*-]{1,128}=[0-9]+-[0-9]+)*)?$"
# One event of the stream, as an event-stream reader parses it.
EVENT_SCHEMA = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"},
                   "retry": {"type": "integer"}},
}
KEY_HEADER = "X-Session-Key"
_KEY = Header(
    None, alias=KEY_HEADER,
    description="The session's private key, from its open frame. Wrong or missing: 404 unknown_sid.",
)


def require_json(request: HttpRequest) -> None:
    """Bodies are JSON and say so: a cross-site form cannot send ``application/json``
    without a CORS preflight, so this keeps every POST out of reach of CSRF."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType(
            f"send the body as application/json, not {media or 'no content type'}", contentType=media
        )


async def _read(request: HttpRequest, limit: int) -> bytes:
    """The body, JSON and within ``maxPayload``: read as it comes, refused as soon as it is over.

    Binaries count at their decoded size (docs/protocol.md, "Binary payloads"): a body may be
    longer by its base64's overhead, so one holding a marker is read up to ``body_limit`` and
    weighed once decoded (``_weighed``); any other is over past ``limit``, as it stands.
    """
    require_json(request)
    cap = binary.body_limit(limit)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"body of {declared} bytes is over maxPayload ({limit})", maxPayload=limit)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > cap:
            raise PayloadTooLarge(f"body is over maxPayload ({limit} bytes)", maxPayload=limit)
    if len(body) > limit and _MARKER not in body:
        raise PayloadTooLarge(f"body is over maxPayload ({limit} bytes)", maxPayload=limit)
    return bytes(body)


_MARKER = binary.MARKER.encode()


def _weighed(request: Request, body: bytes | None, limit: int) -> Request:
    """``request`` if its body, binaries counted decoded, is within ``limit``; else ``PayloadTooLarge``."""
    if body is not None and len(body) > limit:
        weight = len(body) - binary.base64_overhead(request.encode())
        if weight > limit:
            raise PayloadTooLarge(
                f"body of {weight} bytes (binaries decoded) is over maxPayload ({limit})", maxPayload=limit
            )
    return request


def _body(model: type[Schema]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema(by_alias=True)}},
        }
    }


# What a request on a session may answer besides 200 (docs/protocol.md#errors).
ANSWERS = documented(400, 401, 403, 404, 409, 410, 413, 415, 422, 429, 503)


@dataclass(frozen=True, slots=True)
class Route:
    """One request on a session, as an HTTP route: what it reads, how it answers, what the document says."""

    request: type[Request]
    schema: type[Schema] | None  # its body in the OpenAPI document; None: no body
    summary: str
    answers: dict[int | str, dict[str, Any]]
    method: str = "POST"
    status: int = 200  # 204: the answer has no body

    @property
    def path(self) -> str:
        return "/sessions/{sid}" if self.request is Close else f"/sessions/{{sid}}/{self.request.OP}"


ROUTES = (
    Route(Join, JoinRequest, "Join a room", ANSWERS),
    Route(Leave, LeaveRequest, "Leave a room", ANSWERS),
    Route(Publish, PublishRequest, "Publish a room event; the ack carries its offset", ANSWERS),
    Route(Emit, EmitRequest, "Send an application event; the ack is the handler's return value",
          {**ANSWERS, **documented(500)}),
    Route(Ack, AckRequest, "Acknowledge a server call", ANSWERS, status=204),
    Route(Presence, PresenceRequest, "A room's members on every node, a page at a time", ANSWERS),
    Route(Close, None, "Close the session for good", documented(403, 404, 422, 429, 503), "DELETE", 204),
)


def _endpoint(gateway: Gateway, route: Route) -> Callable[..., Awaitable[Response]]:
    """The handler of ``route``: read the body, decode it (the one validation gate), hand it to the hub."""
    op, limit = route.request.OP, gateway.settings.max_payload

    async def endpoint(sid: str, request: HttpRequest, key: str | None = _KEY) -> Response:
        body = await _read(request, limit) if route.schema is not None else None
        result = await gateway.request(sid, key, _weighed(decode_request(op, body), body, limit))
        if route.status == 204:
            return Response(status_code=204)
        # binary.dumps: a handler's bytes answer as binary markers
        return Response(binary.dumps({"ok": True, "result": result}), media_type="application/json")

    return endpoint


def router(gateway: Gateway) -> APIRouter:
    """The SSE + POST endpoints over ``gateway``."""
    settings = gateway.settings
    transport = SseTransport()
    transport.configure(settings.ping_interval, settings.ping_timeout)
    gateway.add_transport(transport)
    api = APIRouter(prefix="/sse", tags=["SSE + POST"])

    @api.get(
        "/connect",
        response_class=EventStreamResponse,
        status_code=200,
        responses={
            200: {"content": {"text/event-stream": {"schema": EVENT_SCHEMA}}, "description": "The event stream"},
            **documented(400, 401, 403, 404, 410, 422, 429, 503),
        },
        summary="Open (or resume) a session and receive its events",
    )
    async def connect(
        request: HttpRequest,
        namespace: str = Query("/", description="Namespace to connect to, e.g. /chat"),
        token: str | None = Query(
            None, description="Credential for the namespace's middleware; prefer Authorization: Bearer "
            "(URLs end up in logs; this parameter is redacted from the access log)",
        ),
        sid: str | None = Query(None, description=f"Session to resume (with its key in {KEY_HEADER})"),
        key: str | None = _KEY,
        last_event_id_query: str | None = Query(
            None, alias="lastEventId", description="Resume cursor on a first connect",
            json_schema_extra={"pattern": CURSOR_PATTERN},
        ),
        last_event_id: str | None = Header(
            None, alias="Last-Event-ID", description="Resume cursor: the last id: line received",
            json_schema_extra={"pattern": CURSOR_PATTERN},
        ),
        authorization: str | None = Header(None),
        mode: Literal["stream", "poll"] = Query(
            "stream",
            description="poll: end the response after the first batch of events (or pingInterval "
            "without any); for proxies that buffer responses. Resume each poll with Last-Event-ID.",
        ),
    ) -> EventStreamResponse:
        address = client_address(request.scope)
        # Counted from here until the stream ends (EventStreamResponse releases it on every path).
        lease = gateway.limits.connection(address)
        try:
            cursor = last_event_id or last_event_id_query
            sid, key, positions = resume_from(cursor, sid, key, settings.max_rooms_per_session)
            channel = SseChannel(gateway, transport, poll=mode == "poll")
            session = await gateway.connect(
                namespace, channel, connect_auth(request, token, authorization),
                resume_sid=sid, resume_key=key, positions=positions, address=address,
            )
        except BaseException:
            lease.release()
            raise
        channel.session = session
        if mode == "poll" and sid is None:
            channel.payloads += 1  # a new session's handshake is worth handing over at once
        return EventStreamResponse(gateway, channel, transport, settings.ping_interval, lease)

    for route in ROUTES:
        api.add_api_route(
            route.path, _endpoint(gateway, route), methods=[route.method], name=route.request.OP,
            status_code=route.status, summary=route.summary, responses=route.answers,
            openapi_extra=_body(route.schema) if route.schema is not None else None,
        )
    return api
