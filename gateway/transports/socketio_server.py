"""Socket.IO (protocol v5) over python-socketio: a thin adapter to the hub.

Room membership is the hub's alone: a broadcast goes to the members the hub passes
(python-socketio's room manager is not used for gateway rooms), encoded once and
written to each member's Engine.IO socket. Everything the hub sends goes through one
ordered outbox, so replayed events, gateway frames and live broadcasts reach each
socket in the order the hub decided. What this borrows from the libraries' internals
goes through ``gateway.fences.engineio_server``, ``gateway.fences.socketio_connect`` and
``gateway.fences.socketio_attachments`` (binary attachments held, bounded).

Connection-state recovery (namespaces where ``Gateway.recovers``), as the official
socket.io-client speaks it: the CONNECT answer carries ``{sid, pid}`` (the session's public
id and private key), every room event ends with the string ``"<room>=<offset>"`` (one per
broadcast, the same for every member), and each session's ``Trail`` records, in write
order, what its connection was handed, so the client's last string places it in every
room (``gateway/core/sessions.py``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
import socketio
from starlette.types import Receive, Scope, Send

from gateway.core.hub import Gateway, Recover
from gateway.core.limits import Lease, client_address
from gateway.core.rooms import Room
from gateway.core.sessions import Channel, Session, position_mark
from gateway.fences.asyncio_eager import run_eagerly
from gateway.fences.engineio_server import (
    EngineSocket,
    engine_sid,
    engine_sockets,
    event_packets,
    open_socket,
    use_queues,
    wake_polls_on_client_close,
    writer_idle,
)
from gateway.fences.socketio_attachments import AttachmentsRefused, bounded_packets, end_socket, guard_attachments
from gateway.fences.socketio_connect import ConnectAnswers
from gateway.fences.socketio_unconnected import answer_unconnected
from gateway.fences.uvicorn_websocket import FrameWriter, text_frame, websocket_writer
from gateway.logs import library_logger
from gateway.transports.byte_queue import ByteQueue
from gateway.wire.envelope import Envelope
from gateway.wire.errors import GatewayError, SessionClosed, UnknownNamespace, ValidationFailed
from gateway.wire.offsets import check_positions
from gateway.wire.requests import Ack, Emit, Join, Leave, Presence, Publish, Request, decode_request

NAME = "socketio"
# The Socket.IO events that are requests of their own; any other event is an application ``Emit``.
_ROOM_OPS = frozenset({Join.OP, Leave.OP, Publish.OP, Presence.OP})
log = logging.getLogger("gateway.socketio")
# The close reason and gateway_dropped_total reason of a socket ended for its binary attachments.
ATTACHMENTS_REFUSED = "binary_attachments"


def ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def failed(error: GatewayError) -> dict[str, Any]:
    return {"ok": False, "error": error.to_wire()}


def refusal(error: GatewayError) -> socketio.exceptions.ConnectionRefusedError:
    """A ``connect_error`` whose ``data`` is ``{"code", "message", ...}``."""
    return socketio.exceptions.ConnectionRefusedError(error.message, error.to_wire())


class SioChannel:
    transport = NAME
    keeps_trail = True
    __slots__ = ("_transport", "eio_sid", "namespace", "session", "sio_sid")

    def __init__(self, transport: SocketIOTransport, sio_sid: str, namespace: str, eio_sid: str | None) -> None:
        self._transport = transport
        self.sio_sid = sio_sid
        self.eio_sid = eio_sid  # the Engine.IO socket room events are written to
        self.namespace = namespace
        self.session: Session | None = None

    def deliver(self, session: Session, envelope: Envelope, wire: bytes) -> None:
        self._transport.outbox_put(("to", envelope.event, _room_event(session, envelope), self.sio_sid, self.namespace))

    def replay(self, session: Session, envelopes: list[Envelope]) -> None:
        # One outbox item however long: a long replay is not a full outbox.
        if envelopes:
            events = [(e.event, _room_event(session, e)) for e in envelopes]
            self._transport.outbox_put(("replay", None, events, self.sio_sid, self.namespace))

    def send(self, event: str, data: Any) -> None:
        self._transport.outbox_put(("to", event, data, self.sio_sid, self.namespace))

    def call(self, ack_id: str, event: str, data: Any) -> None:
        session = self.session
        if isinstance(data, str) and session is not None and session.trail is not None:
            session.trail.add((None, data))  # the client keeps it as its last offset too
        self._transport.outbox_put(("call", event, data, self.sio_sid, self.namespace, ack_id))

    def close(self, reason: str) -> None:
        self._transport.outbox_put(("close", None, None, self.sio_sid, self.namespace))


def _room_event(session: Session, envelope: Envelope) -> Any:
    """A room event's Socket.IO arguments for one session: the envelope, and with recovery
    on, its position as the trailing string (recorded in the session's trail)."""
    trail = session.trail
    if trail is None:
        return envelope.to_wire()
    trail.add((envelope.room, envelope.offset))
    return (envelope.to_wire(), position_mark(envelope.room, envelope.offset))


class SocketIOTransport:
    name = NAME

    def __init__(self, gateway: Gateway) -> None:
        s = gateway.settings
        self.gateway = gateway
        self.server = socketio.AsyncServer(
            async_mode="asgi",
            # Origins are checked once for both transports (gateway/origins.py) before a
            # request gets here; this only decides the CORS headers of polling answers.
            # None: the gateway's own origin. Never credentials: the gateway uses no cookies.
            cors_allowed_origins="*" if "*" in s.cors_origins else (s.cors_origins or None),
            cors_credentials=False,
            ping_interval=s.ping_interval,
            ping_timeout=s.ping_timeout,
            max_http_buffer_size=s.max_payload,
            http_compression=False,
            compression_threshold=s.max_payload,
            # Our own loggers, quiet and counted: left to themselves the libraries log a
            # traceback per malformed packet, which any client can send by the thousand.
            logger=library_logger("socketio", lambda _: gateway.metrics.library_errors.labels("socketio").inc()),
            engineio_logger=library_logger("engineio", lambda _: gateway.metrics.library_errors.labels("engineio").inc()),
            namespaces="*",  # so an unknown namespace gets our error code, not a bare refusal
            # Binary attachments held for a socket: bounded in number and bytes (the fence's docstring).
            serializer=bounded_packets(s.max_binary_attachments, s.max_payload),
        )
        use_queues(self.server, ByteQueue)  # each socket's queue counts its bytes (byte_queue.py)
        wake_polls_on_client_close(self.server)  # a closed client's parked poll answered at once
        guard_attachments(self.server, self._attachments_refused)
        self.answers = ConnectAnswers(self.server)  # {sid, pid} in CONNECT, for recovery
        answer_unconnected(self.server, self._unconnected)  # an event after a disconnect gets an error ack
        self.channels: dict[tuple[str, str], SioChannel] = {}  # (namespace, sio sid) -> channel
        # (namespace, sio sid) -> its place in the address's connection count, until disconnect
        self.leases: dict[tuple[str, str], Lease] = {}
        self._outbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(maxsize=s.socketio_outbox_size)
        self._sender: asyncio.Task[None] | None = None
        self._cutting: set[asyncio.Future[None]] = set()
        self.websockets = DirectWebSockets(self.gateway.metrics)
        # Shared long-polls' last answers, kept until the next poll says they arrived
        # (socketio_multiplex.py keeps it up to date): output still held for clients.
        self.resend_bytes = 0
        for name in gateway.namespaces:
            self.server.register_namespace(_Namespace(name, self))
        self.server.register_namespace(_UnknownNamespace("*", self))
        gateway.add_transport(self)

    def asgi_app(self, other: Any) -> Any:
        return self.websockets.wrap(socketio.ASGIApp(self.server, other_asgi_app=other, socketio_path="socket.io"))

    # -- the hub's side --------------------------------------------------------

    def broadcast(
        self, room: Room, members: dict[str, Session], envelope: Envelope, wire: bytes, skip: str | None
    ) -> None:
        # The members as the hub has them now, not when the outbox drains: each socket then
        # gets the event in its place among the frames queued for it before and after.
        channels = [session.channel for sid, session in members.items() if sid != skip]
        data: Any = envelope.to_wire()
        if envelope.volatile:  # no position to carry: not in a trail, no trailing string
            self.outbox_put(("volatile", envelope.event, data, channels, room.namespace))
            return
        if self.gateway.recovers(room.namespace):
            # One entry, one string for all: the broadcast is still encoded once.
            entry = (envelope.room, envelope.offset)
            data = (data, position_mark(*entry))
            for sid, session in members.items():
                if sid != skip and session.trail is not None:
                    session.trail.add(entry)
        self.outbox_put(("room", envelope.event, data, channels, room.namespace))

    def outbox_put(self, item: tuple[Any, ...]) -> None:
        if self._sender is None:
            self._sender = asyncio.create_task(self._drain(), name="socketio-outbox")
        try:
            self._outbox.put_nowait(item)
        except asyncio.QueueFull:
            # The outbox is this node's whole Socket.IO backlog. Past its bound, whoever
            # the item was for is cut at once (not through the full outbox) and resumes
            # from the delivery log: nothing is lost silently.
            kind, _, _, target, namespace, *_ = item
            if kind == "volatile":  # not worth a cut: dropped for every recipient, counted
                self.gateway.metrics.dropped.labels("volatile_not_ready").inc(len(target))
                return
            if kind == "room":
                sids = [channel.sio_sid for channel in target if isinstance(channel, SioChannel)]
            else:
                sids = [target]
            log.warning("socket.io outbox full: cutting its recipients", extra={"event": item[1], "sessions": len(sids)})
            for sid in sids:
                self.cut(sid, namespace, "socketio_outbox_full")

    def cut(self, sio_sid: str, namespace: str, reason: str) -> None:
        """Detach a socket's session now, tell the client to reconnect, and disconnect it (counted).

        The session stays resumable: the client comes back with its offsets and gets
        what it missed from the delivery log.
        """
        # Forgotten first: the socket's other items in the outbox, or a full one, cut it once.
        channel = self.channels.pop((namespace, sio_sid), None)
        if channel is None:
            return  # already cut, or not connected
        self.gateway.metrics.dropped.labels(reason).inc()
        if channel.session is not None:
            self.gateway.detach(channel.session, channel, reason)
        task = asyncio.ensure_future(self._send_away(sio_sid, namespace, reason))
        self._cutting.add(task)
        task.add_done_callback(self._cutting.discard)

    def _unconnected(self, eio_sid: str, namespace: str) -> dict[str, Any]:
        """An event for ``namespace`` on a connection not connected to it (a packet in flight when
        the session moved away, say): counted, and answered with ``session_closed`` if acked."""
        self.gateway.metrics.dropped.labels("not_connected").inc()
        return failed(SessionClosed(f"this connection is not connected to {namespace}: connect or resume first",
                                    namespace=namespace))

    async def _attachments_refused(self, eio_sid: str, sio_sid: str | None, error: AttachmentsRefused) -> None:
        """A binary packet over the attachment bounds: nothing of it reached the hub and its held
        attachments are let go; the client is told why and not to come back, and its Engine.IO
        socket ends (every namespace on it; their sessions stay resumable, as on any cut)."""
        self.gateway.metrics.dropped.labels(ATTACHMENTS_REFUSED).inc()
        log.info("socket.io binary packet refused: ending its socket", extra={"why": str(error)})
        if sio_sid is not None:
            close = {"reason": ATTACHMENTS_REFUSED, "reconnect": False}
            await self.server.emit("close", close, to=sio_sid, namespace=error.namespace)
        await end_socket(self.server, eio_sid)

    async def _send_away(self, sio_sid: str, namespace: str, reason: str) -> None:
        await self.server.emit("close", {"reason": reason, "reconnect": True}, to=sio_sid, namespace=namespace)
        await self.server.disconnect(sio_sid, namespace=namespace)

    async def _drain(self) -> None:
        server, outbox = self.server, self._outbox
        while True:
            kind, event, data, target, namespace, *extra = await outbox.get()

            try:
                if kind in ("room", "volatile"):
                    self._room_emit(event, data, namespace, target, volatile=kind == "volatile")
                elif kind == "to":
                    await server.emit(event, data, to=target, namespace=namespace)
                elif kind == "replay":
                    for name, envelope in data:
                        await server.emit(name, envelope, to=target, namespace=namespace)
                elif kind == "call":
                    await server.emit(
                        event, data, to=target, namespace=namespace,
                        callback=self._ack_callback(target, namespace, extra[0]),
                    )
                elif kind == "close":
                    await server.disconnect(target, namespace=namespace)
            except Exception:  # one bad socket must not stop the outbox
                log.exception("socket.io send failed", extra={"kind": kind, "event": event})

    def _room_emit(
        self, event: str, data: Any, namespace: str, channels: list[Channel | None], *, volatile: bool = False
    ) -> None:
        """One room broadcast to ``channels``: encoded once, queued for each socket's Engine.IO writer.

        python-socketio's ``emit`` creates one task per recipient; at a thousand
        recipients that is a thousand tasks per event (and the garbage collector's
        time with them). ``AsyncSocket.send`` is three coroutines per recipient around
        an unbounded queue's ``put``; the loop does that ``put`` itself (the ping
        check it skips is the Engine.IO ping loop's job anyway).

        A ``volatile`` event goes only to sockets ready for it: no direct write waiting for the
        socket to drain, and less than ``volatile_backlog_bytes`` in the queue (an empty one
        takes any one event; a polling socket's queue waits for the client's next GET). The
        others drop it (counted); it never cuts anyone.
        """
        server = self.server
        packets, text = event_packets(server, namespace, event, *(data if isinstance(data, tuple) else (data,)))
        bound = self.gateway.settings.session_queue_size
        # With this broadcast, a socket's queue may hold this many bytes (ByteQueue.held).
        size = sum(len(p.data) for p in packets)
        room_for = self.gateway.settings.session_queue_bytes - size
        volatile_room = self.gateway.settings.volatile_backlog_bytes - size
        direct = self.websockets
        frame = text_frame(text) if text is not None else None  # the same bytes for every socket
        for channel in channels:
            if not isinstance(channel, SioChannel):
                continue  # a live member always has its channel: this keeps mypy sure of it
            socket = open_socket(server, channel.eio_sid)
            if socket is None:
                # closing under us: its session resumes from the log
                self.gateway.metrics.dropped.labels("socket_closed").inc()
                continue
            queue = socket.queue
            held = getattr(queue, "held", 0)  # an empty queue takes any one event, as an idle SSE stream does
            if volatile and (direct.stalled(socket) or queue.qsize() > bound or (held and held > volatile_room)):
                self.gateway.metrics.dropped.labels("volatile_not_ready").inc()
                continue
            if queue.qsize() > bound or (held and held > room_for):
                # Engine.IO's per-socket queue has no bound of its own: a client this far
                # behind (in packets or bytes) is cut, as on SSE, and resumes from the log.
                self.cut(channel.sio_sid, namespace, "slow_consumer")
                continue
            if text is not None and frame is not None and direct.write(socket, text, frame):
                continue
            for one in packets:
                queue.put_nowait(one)

    def _ack_callback(self, sio_sid: str, namespace: str, ack_id: str) -> Any:
        async def acked(*args: Any) -> None:
            channel = self.channels.get((namespace, sio_sid))
            session = channel.session if channel is not None else None
            if session is None:
                return
            result = args[0] if len(args) == 1 else list(args)
            body = {"ackId": ack_id, "result": result}
            try:
                await self.gateway.handle(session, decode_request(Ack.OP, body, max_binary=self.gateway.settings.max_payload))
            except GatewayError as exc:
                # A late ack for a call that already timed out, or a result that cannot be sent on
                # (the call then times out): counted, as every refusal.
                self.gateway.metrics.rejected.labels(exc.code).inc()
        return acked

    def pending_bytes(self) -> int:
        """Bytes queued for Engine.IO sockets, and shared-poll answers kept for a resend
        (``gateway_held_bytes{held="output"}``)."""
        return self.resend_bytes + sum(getattr(socket.queue, "held", 0) for socket in engine_sockets(self.server))

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()


class DirectWebSockets:
    """Room events written straight to Engine.IO WebSockets whose writer has nothing to do.

    Engine.IO gives each socket a queue and a writer task that wakes per packet
    (through ``asyncio.wait_for``, a task of its own each time): in a profile at
    N = 1,000 its wake-ups and bookkeeping were ~30% of the Socket.IO path's CPU,
    five times the gateway's own share. When a socket's writer is parked on its empty queue and nothing of ours is
    in flight, nothing can be ahead of a new packet, so the frame goes to the
    connection's ASGI ``send`` at once (``eager.run_eagerly``); otherwise it takes the
    queue as before. Order is kept either way: a write that must wait for the socket
    to drain holds the connection until it is done, and the writer's next ``send``
    waits behind it on the same flow-control event.

    On uvicorn's own WebSocket protocols the frame's bytes, built once per broadcast, go
    to the connection's transport instead (``fences/uvicorn_websocket``): no coroutine,
    message or framing per socket. Only while the transport is under its high-water mark:
    past it the packet takes the queue (and the writer waits on the flow control, as
    before), so a socket whose client does not read is cut by the queue's bounds.
    """

    def __init__(self, metrics: Any) -> None:
        self._metrics = metrics
        self._sends: dict[str, Any] = {}  # Engine.IO sid -> the connection's ASGI send
        self._writers: dict[str, FrameWriter] = {}  # Engine.IO sid -> its transport, where reachable
        self._busy: set[str] = set()  # a direct write waits for the socket to drain

    def wrap(self, app: Any) -> Any:
        async def app_with_direct_websockets(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "websocket":
                await app(scope, receive, send)
                return
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            upgrading = query.get("sid", [None])[0]  # an upgrade from polling names its socket
            known: list[str] = []

            async def learning_send(message: dict[str, Any]) -> None:
                # The connection is the socket's once Engine.IO says so: its OPEN packet
                # (a direct WebSocket) or its answer to the upgrade probe. Never taken
                # over: a second connection naming a socket's sid gets nothing of it.
                if not known and message["type"] == "websocket.send":
                    text = message.get("text") or ""
                    sid = orjson.loads(text[1:])["sid"] if text.startswith("0{") else upgrading if text == "3probe" else None
                    if sid is not None and sid not in self._sends:
                        known.append(sid)
                        self._sends[sid] = send
                        await send(message)
                        # After the handshake (its extensions are known by then).
                        writer = websocket_writer(send)
                        if writer is not None:
                            self._writers[sid] = writer
                        return
                await send(message)

            try:
                await app(scope, receive, learning_send)
            finally:
                if known:
                    self._sends.pop(known[0], None)
                    self._writers.pop(known[0], None)
                    self._busy.discard(known[0])

        return app_with_direct_websockets

    def write(self, socket: EngineSocket, text: str, frame: bytes) -> bool:
        """Write ``text`` (``frame``: the same as a WebSocket frame) to ``socket`` now if
        nothing can be ahead of it; False: queue it."""
        sid = socket.sid
        send = self._sends.get(sid)
        if send is None or sid in self._busy or not writer_idle(socket):
            return False
        writer = self._writers.get(sid)
        if writer is not None:
            if not writer.ready():  # over its high-water mark, or closing: the queue's path
                return False
            writer.write(frame)
            return True
        self._busy.add(sid)
        run_eagerly(send({"type": "websocket.send", "text": text}), lambda _, error: self._written(sid, error))
        return True

    def stalled(self, socket: EngineSocket) -> bool:
        """A write to ``socket`` would wait for it to drain: its client is not reading fast enough."""
        sid = socket.sid
        if sid in self._busy:
            return True
        writer = self._writers.get(sid)
        return writer is not None and not writer.ready()

    def _written(self, sid: str, error: BaseException | None) -> None:
        self._busy.discard(sid)
        if error is not None:  # the connection is going: its session resumes from the log
            self._metrics.dropped.labels("socket_closed").inc()


class _Namespace(socketio.AsyncNamespace):  # type: ignore[misc]  # python-socketio ships no types
    """Routes every Socket.IO event of one namespace to the hub."""

    def __init__(self, name: str, transport: SocketIOTransport) -> None:
        super().__init__(name)
        self.t = transport
        self.gateway = transport.gateway

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event == "connect":  # (sid, environ, auth)
            return await self._connect(args[0], args[2] if len(args) > 2 else None, args[1] if len(args) > 1 else None)
        if event == "disconnect":
            return self._disconnect(args[0], args[1] if len(args) > 1 else "")
        sio_sid, payload = args[0], args[1:]
        channel = self.t.channels.get((self.namespace, sio_sid))
        session = channel.session if channel is not None else None
        if session is None:
            return failed(ValidationFailed("not connected"))
        try:
            return ok(await self._request(session, event, payload))
        except GatewayError as exc:
            self.gateway.metrics.rejected.labels(exc.code).inc()
            return failed(exc)

    async def _request(self, session: Session, event: str, payload: tuple[Any, ...]) -> Any:
        """A Socket.IO event as a typed request, handled by the hub's one dispatch."""
        body = payload[0] if payload else None
        request: Request
        # Binary attachments count decoded against maxPayload together (Engine.IO bounds
        # each message alone): the gate refuses more with payload_too_large.
        limit = self.gateway.settings.max_payload
        if event in _ROOM_OPS:  # emit("join", {"room": ...}): the body is the request's
            request = decode_request(event, body, max_binary=limit)
        else:  # an application event: emit(event, data[, {"clientEventId": ...}])
            meta = payload[1] if len(payload) > 1 and isinstance(payload[1], dict) else {}
            fields = {"event": event, "data": body, "clientEventId": meta.get("clientEventId")}
            if "volatile" in meta:  # emit(event, data, {"volatile": true}): checked by the gate
                fields["volatile"] = meta["volatile"]
            request = decode_request(Emit.OP, fields, max_binary=limit)
        return await self.gateway.handle(session, request)

    async def _connect(self, sio_sid: str, auth: Any, environ: Any = None) -> bool | None:
        auth = auth if isinstance(auth, dict) else {}
        channel = SioChannel(self.t, sio_sid, self.namespace, engine_sid(self.server, sio_sid, self.namespace))
        # python-engineio's environ says REMOTE_ADDR 127.0.0.1 whoever connects: the address
        # is the ASGI scope's, which it keeps beside it.
        address = client_address(environ.get("asgi.scope") if isinstance(environ, dict) else None)
        try:
            # Released by _disconnect, which python-socketio calls only for a connection this
            # handler accepted: every other way out of here releases it itself.
            lease = self.gateway.limits.connection(address)
        except GatewayError as exc:
            self.gateway.metrics.rejected.labels(exc.code).inc()
            raise refusal(exc) from None
        recovers = self.gateway.recovers(self.namespace)
        try:
            resume, key = auth.get("sid"), auth.get("key")
            for name, value in (("sid", resume), ("key", key)):
                if value is not None and not isinstance(value, str):
                    raise ValidationFailed(f"auth.{name} must be a string", field=name)
            session = await self.gateway.connect(
                self.namespace,
                channel,
                auth,
                resume_sid=resume,
                resume_key=key,
                positions=check_positions(auth.get("offsets"), self.gateway.settings.max_rooms_per_session),
                address=address,
                recover=_recover(auth) if recovers and resume is None else None,
            )
        except BaseException as exc:
            lease.release()
            if not isinstance(exc, GatewayError):
                raise
            self.gateway.metrics.rejected.labels(exc.code).inc()
            raise refusal(exc) from None
        if open_socket(self.server, channel.eio_sid) is None:
            # The socket went away while we awaited the hub: python-socketio will not
            # report its disconnect (it never finished connecting), so detach it here.
            self.gateway.detach(session, channel, "socket.io: gone during connect")
            lease.release()
            return False
        channel.session = session
        self.t.channels[(self.namespace, sio_sid)] = channel
        self.t.leases[(self.namespace, sio_sid)] = lease
        if recovers and channel.eio_sid is not None:
            # socket.id is the session's public id (the ``sender`` others see); pid its key.
            self.t.answers.give(channel.eio_sid, self.namespace, {"sid": session.sid, "pid": session.key})
        # python-socketio sends CONNECT after this handler returns; the outbox
        # drains later on the loop, so ``open`` always follows it.
        self.gateway.activate(session)
        return None

    def _disconnect(self, sio_sid: str, reason: str) -> None:
        lease = self.t.leases.pop((self.namespace, sio_sid), None)
        if lease is not None:  # first: a socket cut earlier (no channel left) is released too
            lease.release()
        channel = self.t.channels.pop((self.namespace, sio_sid), None)
        session = channel.session if channel is not None else None
        if channel is None or session is None or session.channel is not channel:
            return  # never connected, or already resumed on another connection
        if reason == self.server.reason.CLIENT_DISCONNECT:
            self.gateway.close(session, "client disconnect")
        else:
            self.gateway.detach(session, channel, f"socket.io: {reason}")


def _recover(auth: dict[str, Any]) -> Recover | None:
    """The official client's recovery request in its CONNECT auth, if it makes one (a
    ``pid`` that is not a string, or an ``offset`` neither absent nor a string: a new session)."""
    pid, last = auth.get("pid"), auth.get("offset")
    if not isinstance(pid, str) or not (last is None or isinstance(last, str)):
        return None
    return Recover(pid, last)


class _UnknownNamespace(socketio.AsyncNamespace):  # type: ignore[misc]  # python-socketio ships no types
    """Answers a connect to any undeclared namespace with ``unknown_namespace``."""

    def __init__(self, name: str, transport: SocketIOTransport) -> None:
        super().__init__(name)
        self.metrics = transport.gateway.metrics

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event == "connect":
            name = str(args[0])[:64]  # never echo more than a short prefix of what a client sent
            error = UnknownNamespace(f"no namespace {name!r}", namespace=name)
            self.metrics.rejected.labels(error.code).inc()
            raise refusal(error)
        return None
