"""Socket.IO v5 over Engine.IO v4, as the generator speaks it: WebSocket and long-polling.

Every server is reached the same way: WebSocket straight away (``transport=websocket``,
no polling handshake first), or long-polling only; namespace ``/chat``; ``join`` with an
ack; then payloads arrive as ``42/chat,["message", ...]`` packets in which ``SAMPLE``
finds ``(t, seq)`` without decoding anything. Engine.IO pings (``2``) get their pong
(``3``) so a run longer than ``pingInterval`` stays connected.

The publisher always uses WebSocket, whatever its subscribers use: what a benchmark of
the polling path measures is the fan-out to polling subscribers, and one publisher on
a WebSocket costs every server the same.
"""

from __future__ import annotations

import time

from .connection import Conn, connect
from .csink import Kind
from .publisher import Publisher
from .sink import Track
from .wire import (
    CLOSE,
    EIO_PING,
    EIO_PONG,
    PING,
    PONG,
    RECORD_SEP,
    SAMPLE,
    TEXT,
    ProtocolError,
    ResponseReader,
    WsReader,
    ack_ok,
    eio_open_sid,
    eio_path,
    http_request,
    payload,
    sio_ack,
    sio_connect,
    sio_event,
    ws_frame,
    ws_upgrade_request,
)

_PONG_FRAME = ws_frame(EIO_PONG)
JOIN_ACK_ID = 0  # publishes use their seq (>= 1) as ack id


def _join_body(room: str) -> bytes:
    return b'{"room":"%s"}' % room.encode()


class SioWs(Conn):
    """A Socket.IO client on a WebSocket. Subscriber (``track``) or publisher (``publisher``)."""

    def __init__(self, track: Track | None = None, publisher: SioPublisher | None = None) -> None:
        super().__init__()
        self.reader = WsReader()
        self.upgraded = False
        self.live = False
        self.track = track
        self.publisher = publisher
        self.namespace = "/chat"

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            data = self._upgrade(data)
            if not data:
                return
        try:
            buf, end, frames = self.reader.feed(data)
        except ProtocolError as exc:
            self.fail(str(exc))
            return
        if end and self.track is not None:
            found = SAMPLE.findall(buf, 0, end)
            if found:
                self.track.add(found, time.monotonic_ns())
        for opcode, frame in frames:
            if opcode == TEXT:
                if frame == EIO_PING:
                    self.write(_PONG_FRAME)
                elif not self.live:
                    self.push(frame)  # a handshake step is waiting for it
                elif self.publisher is not None and frame.startswith(b"43"):
                    self.publisher.ack(frame)
            elif opcode == PING:
                self.write(ws_frame(frame, PONG))
            elif opcode == CLOSE:
                self.fail(f"WebSocket closed by the server ({frame[:2].hex() or 'no code'})")

    def handover(self) -> Kind | None:
        return Kind.WS if self.live and self.reader.at_boundary else None

    def _upgrade(self, data: bytes) -> bytes:
        taken = self.take_head(data, 101, "WebSocket upgrade")
        if taken is None:
            return b""
        self.upgraded = True
        return taken[1]

    def send_packet(self, packet: bytes) -> None:
        self.write(ws_frame(packet))

    async def handshake(self, host: str, port: int, namespace: str, room: str) -> None:
        """Upgrade, connect to ``namespace``, join ``room``: the caller bounds the time."""
        self.namespace = namespace
        self.write(ws_upgrade_request(eio_path("websocket"), f"{host}:{port}"))
        eio_open_sid(await self.next())
        self.send_packet(sio_connect(namespace))
        await _await_connect(self, namespace)
        self.send_packet(sio_event(namespace, JOIN_ACK_ID, "join", _join_body(room)))
        await _await_join(self, namespace)
        self.live = True
        if self.publisher is None:
            self.reader.short = 1  # a live subscriber only looks at pings and control frames


async def _await_connect(conn: Conn, namespace: str) -> None:
    ok, refused = b"40" + namespace.encode() + b",", b"44" + namespace.encode() + b","
    for _ in range(16):
        packet = await conn.next()
        if packet.startswith(ok):
            return
        if packet.startswith(refused):
            raise ConnectionError(f"connect to {namespace} refused: {packet[:200]!r}")
    raise ConnectionError(f"no CONNECT ack from {namespace}")


async def _await_join(conn: Conn, namespace: str) -> None:
    for _ in range(16):
        packet = await conn.next()
        ack = sio_ack(packet, namespace)
        if ack is not None and ack[0] == JOIN_ACK_ID:
            if not ack_ok(ack[1]):
                raise ConnectionError(f"join refused: {ack[1][:200]!r}")
            return
    raise ConnectionError("no ack for join")


async def open_ws(host: str, port: int, namespace: str, room: str, track: Track | None,
                  *, conn_class: type[SioWs] = SioWs, local: str | None = None) -> SioWs:
    """Upgrade, connect, join; ``local``: the source address (``connection.connect``)."""
    conn = await connect(lambda: conn_class(track), host, port, local)
    assert isinstance(conn, SioWs)
    try:
        await conn.handshake(host, port, namespace, room)
    except BaseException:
        conn.close()
        raise
    return conn


class SioPublisher(Publisher):
    """Emits ``publish`` with ack id = seq on one WebSocket; nothing queues in the generator."""

    def __init__(self, host: str, port: int, namespace: str, room: str) -> None:
        super().__init__()
        self.host, self.port, self.namespace, self.room = host, port, namespace, room
        self.conn: SioWs | None = None
        self._pending: set[int] = set()

    async def open(self) -> None:
        conn = await connect(lambda: SioWs(publisher=self), self.host, self.port)
        assert isinstance(conn, SioWs)
        self.conn = conn
        await conn.handshake(self.host, self.port, self.namespace, self.room)

    def _send(self, seq: int, t_ns: int) -> bool:
        conn = self.conn
        if conn is None or conn.ended is not None:
            return False
        self._pending.add(seq)
        conn.send_packet(sio_event(self.namespace, seq, "publish", payload(t_ns, seq, self.room.encode())))
        return True

    def ack(self, packet: bytes) -> None:
        try:
            parsed = sio_ack(packet, self.namespace)
        except ProtocolError:
            return
        if parsed is None or parsed[0] not in self._pending:
            return
        seq, args = parsed
        self._pending.discard(seq)
        self.settle(seq, None if ack_ok(args) else f"error ack {args[:120]!r}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class SioPolling(Conn):
    """A Socket.IO client on Engine.IO long-polling: one keep-alive connection, one request at
    a time. While live, every response re-issues the next GET at once (after a ``3`` POST
    when the response carried a ping), so a subscriber always has a poll waiting."""

    def __init__(self, track: Track) -> None:
        super().__init__()
        self.track = track
        self.responses = ResponseReader()
        self.live = False
        self.poll = b""  # the GET, once the sid is known
        self.pong = b""
        self.ponging = False
        self.polls = 0

    def data_received(self, data: bytes) -> None:
        try:
            responses = self.responses.feed(data)
        except ProtocolError as exc:
            self.fail(f"bad HTTP response: {exc}")
            return
        for response in responses:
            if not self.live:
                self.push(response)
            elif response.status != 200:
                self.fail(f"poll answered {response.status}: {response.body[:200]!r}")
            elif self.ponging:
                self.ponging = False
                self.write(self.poll)
            else:
                self._polled(response.body)

    def _polled(self, body: bytes) -> None:
        self.polls += 1
        found = SAMPLE.findall(body)
        if found:
            self.track.add(found, time.monotonic_ns())
        if len(body) < 64 or body.startswith(EIO_PING + RECORD_SEP) or (RECORD_SEP + EIO_PING) in body:
            packets = body.split(RECORD_SEP)
            if b"1" in packets:
                self.fail("Engine.IO close packet")
                return
            if EIO_PING in packets:
                self.ponging = True
                self.write(self.pong)
                return
        self.write(self.poll)

    async def request(self, request: bytes) -> bytes:
        self.write(request)
        response = await self.next()
        if response.status != 200:
            raise ConnectionError(f"polling request answered {response.status}: {response.body[:200]!r}")
        return response.body

    async def packets(self) -> list[bytes]:
        assert self.poll
        return (await self.request(self.poll)).split(RECORD_SEP)

    async def handshake(self, host: str, port: int, namespace: str, room: str) -> None:
        hostport = f"{host}:{port}"
        sid = eio_open_sid(await self.request(http_request("GET", eio_path("polling"), hostport)))
        path = eio_path("polling", sid)
        self.poll = http_request("GET", path, hostport)
        self.pong = http_request("POST", path, hostport, EIO_PONG)
        post = lambda body: http_request("POST", path, hostport, body)  # noqa: E731
        await self.request(post(sio_connect(namespace)))
        await _await_packet(self, namespace, connect=True)
        await self.request(post(sio_event(namespace, JOIN_ACK_ID, "join", _join_body(room))))
        await _await_packet(self, namespace, connect=False)
        self.live = True
        self.write(self.poll)


async def _await_packet(conn: SioPolling, namespace: str, *, connect: bool) -> None:
    """Poll until the CONNECT ack (``connect``) or the join ack arrives, answering pings."""
    ok, refused = b"40" + namespace.encode() + b",", b"44" + namespace.encode() + b","
    for _ in range(16):
        for packet in await conn.packets():
            if packet == EIO_PING:
                await conn.request(conn.pong)
            elif connect and packet.startswith(ok):
                return
            elif connect and packet.startswith(refused):
                raise ConnectionError(f"connect to {namespace} refused: {packet[:200]!r}")
            elif not connect:
                ack = sio_ack(packet, namespace)
                if ack is not None and ack[0] == JOIN_ACK_ID:
                    if not ack_ok(ack[1]):
                        raise ConnectionError(f"join refused: {ack[1][:200]!r}")
                    return
    raise ConnectionError("no ack within 16 polls")


async def open_polling(host: str, port: int, namespace: str, room: str, track: Track) -> SioPolling:
    conn = await connect(lambda: SioPolling(track), host, port)
    assert isinstance(conn, SioPolling)
    try:
        await conn.handshake(host, port, namespace, room)
    except BaseException:
        conn.close()
        raise
    return conn
