"""Gevent-native gateway clients for the Locust users: plain sockets, no client library.

Each client is a few gevent sockets driven by the load generator's sans-I/O codecs
(``comparison.bench.wire``: HTTP/1.1 responses, chunked bodies, WebSocket frames, Engine.IO /
Socket.IO packets) and the client protocol core (``rtclient.protocol``: ``SseParser``,
``ClientState``: offsets, duplicates dropped by offset, gaps, the resume cursor). A delivery
costs a ``recv``, a parse and an ``orjson.loads``: no thread, no ``asyncio`` loop, no httpx.

* ``SseClient``: ``GET /sse/connect`` read on one socket (``mode=poll`` for buffering proxies),
  POSTs on a keep-alive socket of its own.
* ``SioClient``: Socket.IO v5 / Engine.IO v4 over WebSocket, over long-polling, or the
  default client's way (polling handshake, then the WebSocket upgrade, staying on polling
  when it is refused).
* ``AutoClient``: ``auto`` as ``rtclient`` and ``rtgateway.js`` do it: the session opens on
  SSE at once, WebSocket is tried beside it, and the live session moves there when it opens.

Both resume after a lost connection (the SSE cursor, Socket.IO's ``auth`` with ``sid``,
``key`` and ``offsets``) and report every delivery to ``Sink``. The reference servers of the
calibration cells (``comparison/bench/servers``) send events without offsets and a minimal
``open``: those pass through unchecked, by the same code path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit

import gevent
import gevent.event
import gevent.lock
import orjson
from gevent import socket

from comparison.bench.wire import (
    CLOSE,
    EIO_PING,
    EIO_PONG,
    PING,
    PONG,
    RECORD_SEP,
    TEXT,
    ChunkedDecoder,
    Response,
    ResponseReader,
    WsReader,
    eio_path,
    http_request,
    parse_head,
    ws_frame,
    ws_upgrade_request,
)
from rtclient.protocol import ClientState, Closing, Gap, ProtocolError, RoomEvent, SseParser

RECV: Final = 65536
RESUME_ATTEMPTS: Final = 8  # a lost connection is resumed this many times before the client gives up
SseMode = Literal["auto", "stream", "poll"]
SioTransport = Literal["websocket", "polling", "default"]


class Lost(ConnectionError):
    """The connection ended (or the peer broke the protocol); ``str()`` says how."""


class TimedOut(Lost):
    """Nothing arrived within the read's timeout."""


@dataclass(slots=True)
class Sink:
    """Where a client reports: ``deliver(bodies, received_at)`` once per read that carried room
    events (``received_at`` is ``time.time()`` when the read returned), ``gap(room, why)``."""

    deliver: Callable[[list[Any], float], None]
    gap: Callable[[str, str], None]


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


class Conn:
    """A TCP connection on a gevent socket (timeouts in seconds, ``None``: block)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.hostport = f"{host}:{port}"
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise Lost(f"connect to {self.hostport}: {exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise Lost(f"send: {exc}") from None

    def recv(self, timeout: float | None = None) -> bytes:
        self.sock.settimeout(timeout)
        try:
            data: bytes = self.sock.recv(RECV)
        except TimeoutError:
            raise TimedOut(f"recv: nothing within {timeout} s") from None
        except OSError as exc:
            raise Lost(f"recv: {exc or type(exc).__name__}") from None
        if not data:
            raise Lost("closed by the peer")
        return data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# A keep-alive connection idle longer than this is not reused: the server may close it meanwhile
# (uvicorn closes after 5 s), and a request sent as it does fails with "closed by the peer".
# A browser retries such a request on a fresh connection; opening one first comes to the same.
IDLE_REOPEN = 4.0


class Http(Conn):
    """Keep-alive requests on one connection, one at a time (``request`` holds a lock). A request
    that fails leaves the connection broken; the next one opens a fresh connection, and so does
    one after the connection sat idle for ``IDLE_REOPEN`` seconds."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout)
        self.address = (host, port)
        self.timeout = timeout
        self.reader = ResponseReader()
        self.lock = gevent.lock.RLock()  # re-entrant: a caller may hold it around a request
        self.broken = False
        self.used_at = time.monotonic()

    def request(self, raw: bytes, timeout: float | None = None) -> Response:
        with self.lock:
            if not self.broken and time.monotonic() - self.used_at > IDLE_REOPEN:
                self.close()
                self.broken = True
            if self.broken:
                Conn.__init__(self, *self.address, self.timeout)
                self.reader, self.broken = ResponseReader(), False
            try:
                self.send(raw)
                while True:
                    try:
                        done = self.reader.feed(self.recv(self.timeout if timeout is None else timeout))
                    except ValueError as exc:  # the codec's ProtocolError
                        raise Lost(f"bad HTTP response: {exc}") from None
                    if done:
                        self.used_at = time.monotonic()
                        return done[0]
            except Lost:
                self.broken = True
                self.close()
                raise


def read_head(conn: Conn, status: int, timeout: float) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Read a response head answering ``status``: (head bytes, headers, the bytes after it)."""
    buf = b""
    while True:
        buf += conn.recv(timeout)
        try:
            parsed = parse_head(buf)
        except ValueError as exc:
            raise Lost(str(exc)) from None
        if parsed is not None:
            head, used = parsed
            if head.status != status:
                raise Lost(f"answered {head.status}: {buf[used:used + 200]!r}")
            return buf[:used], head.headers, buf[used:]


class Client:
    """What both transports share: the session's state, the sink, the resume loop."""

    def __init__(self, url: str, namespace: str, sink: Sink, timeout: float = 10.0) -> None:
        self.host, self.port = address(url)
        self.namespace = namespace
        self.sink = sink
        self.timeout = timeout
        self.state = ClientState(namespace=namespace)
        self.closing = False
        self.ended: str | None = None  # why the session is over for good (close ``replaced``, resume refused)
        self.reader: gevent.Greenlet[Any, Any] | None = None
        self.resumes = 0

    def frame(self, name: str, data: Any, out: list[Any]) -> None:
        """One gateway frame: room events' data go to ``out``, gaps to the sink."""
        try:
            events = self.state.handle(name, data)
        except ProtocolError:
            if isinstance(data, dict) and "offset" not in data:
                # A reference server's frame: a minimal open, an event without an offset.
                if name == "open" and isinstance(data.get("sid"), str):
                    self.state.sid, self.state.key = data["sid"], data.get("key")
                elif "data" in data:
                    out.append(data["data"])
            return
        for event in events:
            if isinstance(event, RoomEvent):
                out.append(event.data)
            elif isinstance(event, Gap):
                self.sink.gap(event.room, f"{event.reason} after {event.after}")
            elif isinstance(event, Closing) and not event.reconnect:
                self.ended = f"closed by the gateway: {event.reason}"

    def run(self, connected: Callable[[], Iterator[None]]) -> None:
        """The reader greenlet: ``connected()`` reads until its connection is lost; then resume."""
        failures = 0
        while not self.closing and self.ended is None:
            try:
                for _ in connected():
                    failures = 0  # it read something: the connection was usable
            except Lost:
                pass
            if self.closing or self.ended is not None:
                return
            failures += 1
            if failures > RESUME_ATTEMPTS:
                self.ended = f"resume failed {RESUME_ATTEMPTS} times"
                return
            gevent.sleep(min(2.0, 0.05 * 2**failures))
            try:
                self.resume()
                self.resumes += 1
            except Lost:
                continue
            except RequestFailed as exc:  # the server refused the resume: this session is over
                self.ended = str(exc)
                return

    def resume(self) -> None:
        raise NotImplementedError

    def upgraded_to_websocket(self, within: float) -> bool:
        """Whether the connection moved to a WebSocket within ``within`` seconds (Socket.IO's default)."""
        return False

    def close(self) -> None:
        self.closing = True
        if self.reader is not None:
            self.reader.kill(block=False)


# -- SSE + POST -----------------------------------------------------------------------------

_NO_OPEN_WITHIN: Final = 3.0  # auto mode: headers but no ``open`` this long means a buffering proxy


class SseClient(Client):
    def __init__(self, url: str, namespace: str, sink: Sink, mode: SseMode = "auto", timeout: float = 10.0) -> None:
        super().__init__(url, namespace, sink, timeout)
        self.mode: SseMode = mode
        self.stream: Conn | None = None
        self.posts: Http | None = None
        self.decoder: ChunkedDecoder | None = None
        self.parser = SseParser()

    def connect(self, room: str) -> None:
        self.open_stream()
        self.request("join", {"room": room})
        self.reader = gevent.spawn(self.run, self.read)

    def open_stream(self) -> None:
        """GET /sse/connect, resuming from the cursor if there is one; a new session waits for ``open``."""
        poll = self.mode == "poll"
        target = f"/sse/connect?namespace={quote(self.namespace)}" + ("&mode=poll" if poll else "")
        cursor = self.state.cursor
        headers = "Accept: text/event-stream\r\n" + (f"Last-Event-ID: {cursor}\r\n" if cursor else "")
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        conn = Conn(self.host, self.port, self.timeout)
        try:
            conn.send(http_request("GET", target, conn.hostport, headers=headers))
            _, head, rest = read_head(conn, 200, self.timeout)
            self.decoder = ChunkedDecoder() if b"chunked" in head.get(b"transfer-encoding", b"") else None
            self.parser = SseParser()
            self.consume(rest)
            deadline = time.monotonic() + (_NO_OPEN_WITHIN if self.mode == "auto" else self.timeout)
            while self.state.sid is None:  # a new session: its open frame first (a resume's comes in the stream)
                left = deadline - time.monotonic()
                if left <= 0 and self.mode == "auto":
                    # Headers came, the open frame did not: a proxy buffers the stream. Poll instead.
                    self.mode = "poll"
                    conn.close()
                    self.open_stream()
                    return
                if left <= 0:
                    raise Lost("no open frame")
                with contextlib.suppress(TimedOut):  # the loop decides what a silence means
                    self.consume(conn.recv(left))
        except BaseException:
            conn.close()
            raise
        self.stream = conn

    def consume(self, data: bytes) -> None:
        """Stream bytes in: room events to the sink, the rest to the session's state."""
        if not data:
            return
        body = self.decoder.feed(data) if self.decoder is not None else data
        received = time.time()
        out: list[Any] = []
        for frame in self.parser.feed(body):
            try:
                payload = self.state.decode_frame(frame)
            except ProtocolError:
                continue
            self.frame(frame.event, payload, out)
        if out:
            self.sink.deliver(out, received)

    def read(self) -> Iterator[None]:
        while True:
            stream = self.stream
            if stream is None:
                raise Lost("no stream")
            idle = self.state.ping_interval + self.state.ping_timeout
            while self.decoder is None or not self.decoder.done:
                self.consume(stream.recv(idle))
                yield None
            # A poll-mode response ended after its batch: the next poll resumes from the cursor at once.
            # Not after ``close {replaced}`` (ended): resuming here would take the session back from
            # where it went (auto: the WebSocket it just moved to, whose requests then go unanswered).
            if self.closing or self.ended is not None:
                return
            self.open_stream()

    def resume(self) -> None:
        self.open_stream()

    def request(self, verb: str, body: dict[str, Any], *, again: bool = True) -> Any:
        """POST a request on the session: its ``result``, or ``Lost`` / ``RequestFailed``
        (``again``: once more on a fresh connection if the keep-alive one was gone)."""
        sid, key = self.state.sid, self.state.key
        if sid is None:
            raise Lost("no session")
        raw = http_request("POST", f"/sse/sessions/{sid}/{verb}", f"{self.host}:{self.port}", orjson.dumps(body),
                           f"X-Session-Key: {key}\r\n" if key else "")
        if self.posts is None:
            self.posts = Http(self.host, self.port, self.timeout)
        try:
            response = self.posts.request(raw)
        except Lost:  # a keep-alive connection the proxy or server closed: once more, on a fresh one
            if not again:
                raise
            response = self.posts.request(raw)
        if response.status != 200:
            raise RequestFailed(f"{verb} answered {response.status}: {response.body[:200]!r}")
        return orjson.loads(response.body).get("result") if response.body else None

    def publish(self, room: str, data: Any, event_id: str) -> None:
        # ``clientEventId``: a publish retried on a fresh connection is not published twice.
        self.request("publish", {"room": room, "data": data, "clientEventId": event_id})

    def publish_volatile(self, room: str, data: Any) -> None:
        """A volatile publish (docs/protocol.md), sent once: HTTP answers every POST, so it waits
        for that answer, on the POST connection the logged publishes use too."""
        self.request("publish", {"room": room, "data": data, "volatile": True}, again=False)

    def close(self) -> None:
        super().close()
        for conn in (self.stream, self.posts):
            if conn is not None:
                conn.close()


class RequestFailed(RuntimeError):
    """The server answered a request with an error."""


# -- Socket.IO v5 over Engine.IO v4 -----------------------------------------------------------


class SioClient(Client):
    """One Socket.IO client. ``transport``: ``websocket``, ``polling`` or ``default`` (polling,
    then the WebSocket upgrade; ``upgraded`` says whether it happened)."""

    def __init__(self, url: str, namespace: str, sink: Sink, transport: SioTransport,
                 timeout: float = 10.0) -> None:
        super().__init__(url, namespace, sink, timeout)
        self.transport: SioTransport = transport
        self.ws: Conn | None = None
        self.ws_reader = WsReader()
        self.polls: Http | None = None
        self.posts: Http | None = None
        self.eio_sid: str | None = None
        self.packets: Iterator[bytes] = iter(())
        self.acks: dict[int, gevent.event.AsyncResult] = {}
        self.next_ack = 0
        # Writes to the WebSocket: the user's publishes, its volatile sender and the reader's pongs
        # each run in a greenlet of their own, and gevent lets one greenlet at a time wait on a socket.
        self.writing = gevent.lock.Semaphore()
        self.upgraded = gevent.event.AsyncResult()  # True once on WebSocket, False if the upgrade failed
        self.pausing = gevent.event.Event()  # the upgrade asks polling to stop after its current request
        self.paused = gevent.event.Event()  # polling stopped
        self.ping_timeout = 45.0
        # Socket.IO packets of this namespace: "4" (Engine.IO message), the type digit, "/chat," ("/": nothing)
        self.nsp = b"" if namespace == "/" else namespace.encode() + b","

    # -- connecting

    def connect(self, room: str) -> None:
        self.open_session()
        self.reader = gevent.spawn(self.run, self.read)
        self.emit("join", {"room": room})

    def open_session(self) -> None:
        """A new Engine.IO connection, then Socket.IO's CONNECT with ``auth`` (a resume once we
        have a session), read here until the namespace accepts it."""
        self.close_transports()
        if self.transport == "websocket":
            self.ws, self.ws_reader = Conn(self.host, self.port, self.timeout), WsReader()
            self.ws.send(ws_upgrade_request(eio_path("websocket"), self.ws.hostport))
            _, _, rest = read_head(self.ws, 101, self.timeout)
            self.packets = self.ws_packets(rest)
            self.opened(next(self.packets))
        else:
            self.upgraded, self.pausing, self.paused = gevent.event.AsyncResult(), gevent.event.Event(), \
                gevent.event.Event()
            self.polls = Http(self.host, self.port, self.timeout)
            self.posts = Http(self.host, self.port, self.timeout)
            response = self.polls.request(http_request("GET", eio_path("polling"), self.polls.hostport))
            if response.status != 200:
                raise Lost(f"polling handshake answered {response.status}")
            self.opened(response.body.split(RECORD_SEP)[0])
            self.packets = self.poll_packets()
        self.send(b"40" + self.nsp + orjson.dumps(self.state.resume_auth()))
        out: list[Any] = []
        for packet in self.packets:
            if packet == EIO_PING:
                self.send(EIO_PONG)
            elif packet.startswith(b"40" + self.nsp):
                break
            elif packet.startswith(b"44" + self.nsp):
                self.ended = f"connect refused: {packet[:200]!r}"
                raise RequestFailed(self.ended)
            elif packet.startswith(b"4"):
                self.packet(packet, out)  # the open frame may come before the CONNECT answer
        else:
            raise Lost("no CONNECT answer")
        if out:
            self.sink.deliver(out, time.time())
        if self.transport == "default":
            gevent.spawn(self.upgrade)

    def opened(self, packet: bytes) -> None:
        if not packet.startswith(b"0{"):
            raise Lost(f"expected an Engine.IO open packet, got {packet[:80]!r}")
        info = orjson.loads(packet[1:])
        self.eio_sid = str(info["sid"])
        self.ping_timeout = (info.get("pingInterval", 25000) + info.get("pingTimeout", 20000)) / 1000

    def resume(self) -> None:
        self.open_session()

    def upgraded_to_websocket(self, within: float) -> bool:
        return bool(self.upgraded.get(timeout=within)) if self.upgraded.wait(within) else False

    def upgrade(self) -> None:
        """The default client's upgrade (Engine.IO v4): probe a WebSocket for this session, pause
        polling (no new GET once the probe answered; the server ends the one in flight), then
        send ``5`` on the WebSocket, which carries everything from there on."""
        upgraded, pausing, paused = self.upgraded, self.pausing, self.paused
        try:
            ws = Conn(self.host, self.port, self.timeout)
            ws.send(ws_upgrade_request(eio_path("websocket", self.eio_sid), ws.hostport))
            _, _, data = read_head(ws, 101, self.timeout)
            reader = WsReader()
            ws.send(ws_frame(b"2probe"))
            while (TEXT, b"3probe") not in reader.feed(data)[2]:
                data = ws.recv(self.timeout)
            pausing.set()
            if not paused.wait(self.timeout):
                raise Lost("polling did not pause")
        except (Lost, ValueError):
            upgraded.set(False)
            return
        posts = self.posts
        if upgraded is not self.upgraded or self.closing or posts is None:  # the session was replaced meanwhile
            ws.close()
            upgraded.set(False)
            return
        # No POST may be in flight once the server switched: it would refuse it ("unexpected request").
        with posts.lock:
            ws.send(ws_frame(b"5"))
            self.ws, self.ws_reader = ws, reader
            upgraded.set(True)

    # -- packets in

    def ws_packets(self, data: bytes) -> Iterator[bytes]:
        ws = self.ws
        assert ws is not None
        while True:
            if data:
                try:
                    _, _, frames = self.ws_reader.feed(data)
                except ValueError as exc:
                    raise Lost(str(exc)) from None
                for opcode, payload in frames:
                    if opcode == TEXT:
                        yield payload
                    elif opcode == PING:
                        with self.writing:
                            ws.send(ws_frame(payload, PONG))
                    elif opcode == CLOSE:
                        raise Lost("WebSocket closed by the server")
            data = ws.recv(self.ping_timeout)

    def poll_packets(self) -> Iterator[bytes]:
        polls, upgraded = self.polls, self.upgraded
        assert polls is not None and self.eio_sid is not None
        request = http_request("GET", eio_path("polling", self.eio_sid), polls.hostport)
        while not self.pausing.is_set():
            response = polls.request(request, self.ping_timeout)
            if response.status != 200:
                raise Lost(f"poll answered {response.status}: {response.body[:200]!r}")
            yield from response.body.split(RECORD_SEP)
        self.paused.set()  # an upgrade is under way: the last poll came back, no new one
        if not upgraded.get():
            raise Lost("the upgrade failed after polling paused")
        yield from self.ws_packets(b"")

    def read(self) -> Iterator[None]:
        out: list[Any] = []
        for packet in self.packets:
            received = time.time()
            if packet == EIO_PING:
                self.send(EIO_PONG)
            elif packet.startswith(b"4"):
                self.packet(packet, out)
                if out:
                    self.sink.deliver(out, received)
                    out = []
            elif packet == b"1":
                raise Lost("Engine.IO close packet")
            yield None

    def packet(self, packet: bytes, out: list[Any]) -> None:
        """A Socket.IO packet (``4`` and its type digit first) of our namespace."""
        kind, body = packet[1:2], packet[2:]
        if not body.startswith(self.nsp):
            return
        body = body[len(self.nsp):]
        if kind == b"2":  # EVENT: [<id>]["name", data]
            args = orjson.loads(body[body.find(b"["):])
            if args and isinstance(args[0], str):
                self.frame(args[0], args[1] if len(args) > 1 else None, out)
        elif kind == b"3":  # ACK: <id>[...]
            bracket = body.find(b"[")
            waiter = self.acks.pop(int(body[:bracket]), None)
            if waiter is not None:
                args = orjson.loads(body[bracket:])
                waiter.set(args[0] if args else None)
        elif kind == b"1":  # DISCONNECT
            raise Lost("disconnected by the server")

    # -- packets out

    def send(self, packet: bytes) -> None:
        posts = self.posts
        if self.ws is None and posts is not None and self.eio_sid is not None:
            with posts.lock:  # held by an upgrade in progress: then the WebSocket is there after it
                if self.ws is None:
                    response = posts.request(http_request("POST", eio_path("polling", self.eio_sid), posts.hostport,
                                                          packet))
                    if response.status != 200:
                        raise Lost(f"POST answered {response.status}")
                    return
        ws = self.ws
        if ws is None:
            raise Lost("no connection")
        with self.writing:
            ws.send(ws_frame(packet))

    def emit(self, event: str, data: Any) -> Any:
        """Emit with an ack: the ack's ``result``; ``RequestFailed`` for an error ack, ``Lost``."""
        self.next_ack += 1
        ack_id = self.next_ack
        waiter = self.acks[ack_id] = gevent.event.AsyncResult()
        try:
            self.send(b"42" + self.nsp + b"%d" % ack_id + orjson.dumps([event, data]))
            answer = waiter.get(timeout=self.timeout)
        except gevent.Timeout:
            raise Lost(f"no ack for {event} within {self.timeout} s") from None
        finally:
            self.acks.pop(ack_id, None)
        if not isinstance(answer, dict) or not answer.get("ok"):
            raise RequestFailed(f"{event} refused: {str(answer)[:200]}")
        return answer.get("result")

    def publish(self, room: str, data: Any, event_id: str) -> None:
        self.emit("publish", {"room": room, "data": data, "clientEventId": event_id})

    def publish_volatile(self, room: str, data: Any) -> None:
        """A volatile publish (docs/protocol.md), fire-and-forget: no ack id, so the gateway
        answers nothing (as Socket.IO's volatile emits)."""
        self.send(b"42" + self.nsp + orjson.dumps(["publish", {"room": room, "data": data, "volatile": True}]))

    def close_transports(self) -> None:
        for conn in (self.ws, self.polls, self.posts):
            if conn is not None:
                conn.close()
        self.ws = self.polls = self.posts = None
        for waiter in self.acks.values():
            waiter.set_exception(Lost("connection replaced"))
        self.acks.clear()

    def close(self) -> None:
        super().close()
        self.close_transports()


# -- auto: SSE at once, the live session moved to WebSocket when the network allows ------------


class AutoClient:
    """``auto`` (``rtclient.aio.AutoClient``'s way, on the light clients): the session opens on
    SSE + POST (one round trip), a WebSocket is tried beside it, and once its Socket.IO CONNECT
    resumed the session (auth ``{sid, key, offsets}``) requests go there and the SSE stream is
    let go of. Both connections feed one ``ClientState``, whose offsets drop the overlap, so a
    move loses and repeats nothing; a proxy that refuses WebSocket leaves the session on SSE."""

    def __init__(self, url: str, namespace: str, sink: Sink, mode: SseMode = "auto", timeout: float = 10.0) -> None:
        self.url, self.namespace, self.sink, self.timeout = url, namespace, sink, timeout
        self.sse = SseClient(url, namespace, sink, mode, timeout)
        self.current: SseClient | SioClient = self.sse
        self.moved = gevent.event.AsyncResult()  # True once on WebSocket, False if it was refused
        self.closing = False

    @property
    def ended(self) -> str | None:
        # Until the move is decided, the SSE stream's ``close {replaced}`` is our own move taking
        # the session, not its end (the stream may hear it before the WebSocket's CONNECT answer).
        if self.current is self.sse and not self.moved.ready():
            return None
        return self.current.ended

    def connect(self, room: str) -> None:
        self.sse.connect(room)
        gevent.spawn(self.move)

    def move(self) -> None:
        ws = SioClient(self.url, self.namespace, self.sink, "websocket", self.timeout)
        ws.state = self.sse.state  # one session, one set of offsets
        try:
            ws.open_session()
        except (Lost, RequestFailed, ValueError):
            ws.close()
            self.moved.set(False)
            return
        if self.closing:
            ws.close()
            self.moved.set(False)
            return
        ws.reader = gevent.spawn(ws.run, ws.read)
        self.current = ws
        self.sse.close()  # the gateway has already sent it ``close {reason: "replaced"}``
        self.moved.set(True)

    def publish(self, room: str, data: Any, event_id: str) -> None:
        # A publish the old connection could not finish is sent again on the new one: its event id
        # makes the gateway publish it once.
        client = self.current
        try:
            client.publish(room, data, event_id)
        except (Lost, RequestFailed):
            if self.current is client:
                raise
            self.current.publish(room, data, event_id)

    def publish_volatile(self, room: str, data: Any) -> None:
        """On the connection there is, once: not again on the next one if this one is going."""
        self.current.publish_volatile(room, data)

    def upgraded_to_websocket(self, within: float) -> bool:
        return bool(self.moved.get(timeout=within)) if self.moved.wait(within) else False

    def close(self) -> None:
        self.closing = True
        self.sse.close()
        if self.current is not self.sse:
            self.current.close()
