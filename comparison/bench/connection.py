"""Raw asyncio connections of the load generator: a base protocol and a keep-alive HTTP pool.

The generator uses ``asyncio.Protocol`` (on uvloop), never streams: a delivery costs one
``data_received`` call and whatever the subclass does with the bytes, with no task, no
future and no buffer copy on the way. Handshakes, which are few, are written as plain
``await``s over an inbox that ``data_received`` fills, each bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from .wire import ProtocolError, Response, ResponseHead, ResponseReader, http_request, parse_head, post_template

if TYPE_CHECKING:
    from .csink import Kind


class Conn(asyncio.Protocol):
    """A TCP connection with an inbox for handshake steps and a reason when it ends."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.inbox: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.ended: str | None = None  # why the connection is over, once it is
        self.closing = False  # we closed it on purpose
        self.head = b""  # a response head still arriving

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ended is None:
            self.ended = "closed by us" if self.closing else f"closed by the server ({exc or 'EOF'})"
        self._wake()

    def take_head(self, data: bytes, status: int, what: str) -> tuple[ResponseHead, bytes] | None:
        """Accumulate a response head; once complete and answering ``status``, return it with
        the bytes after it. A wrong status or a malformed head fails the connection."""
        self.head += data
        try:
            parsed = parse_head(self.head)
        except ProtocolError as exc:
            self.fail(str(exc))
            return None
        if parsed is None:
            return None
        head, used = parsed
        if head.status != status:
            self.fail(f"{what} answered {head.status}: {self.head[used:used + 200]!r}")
            return None
        rest, self.head = self.head[used:], b""
        return head, rest

    def handover(self) -> Kind | None:
        """How the C receive loop must parse this connection's bytes from here on, or None while
        a frame is half-read (``csink.KernelSink.adopt`` then lets it read on). Subscribers'
        streams say; every other connection is read in Python only."""
        raise NotImplementedError(f"{type(self).__name__} is read in Python only")

    def fail(self, reason: str) -> None:
        """End the connection because the peer broke the protocol."""
        if self.ended is None:
            self.ended = reason
        self.close()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def push(self, item: Any) -> None:
        self.inbox.append(item)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self) -> Any:
        """The next inbox item; the caller bounds the wait (``asyncio.timeout``)."""
        while not self.inbox:
            if self.ended is not None:
                raise ConnectionError(self.ended)
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self.inbox.popleft()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


# Linux: bind() leaves the port to connect(), which picks one unique for the whole 4-tuple.
IP_BIND_ADDRESS_NO_PORT: Final = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


async def connect(factory: Callable[[], Conn], host: str, port: int, local: str | None = None) -> Conn:
    """Connect; from the source address ``local`` if given, so that more connections than one
    address has ephemeral ports can reach one server port.

    The source port is chosen at connect time (``IP_BIND_ADDRESS_NO_PORT``), not at bind: a
    port bound to ``local`` with ``bind(..., 0)`` must be free of every other socket, those in
    TIME_WAIT from the previous run included (19,500 of them left a second run 9,146 ports),
    while connect only needs the 4-tuple to be new, and each run's server has a port of its own.
    """
    loop = asyncio.get_running_loop()
    if local is None:
        _, protocol = await loop.create_connection(factory, host, port)
        return protocol  # type: ignore[return-value]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((local, 0))
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        _, protocol = await loop.create_connection(factory, sock=sock)
    except BaseException:
        sock.close()
        raise
    return protocol  # type: ignore[return-value]


OnResponse = Callable[[Any, Response | None], None]


class HttpConn(Conn):
    """One keep-alive HTTP/1.1 connection, one request at a time (no pipelining)."""

    def __init__(self, pool: HttpPool) -> None:
        super().__init__()
        self.pool = pool
        self.reader = ResponseReader()
        self.pending: tuple[Any, OnResponse] | None = None

    def send(self, request: bytes, tag: Any, on_response: OnResponse) -> None:
        self.pending = (tag, on_response)
        self.write(request)

    def data_received(self, data: bytes) -> None:
        try:
            responses = self.reader.feed(data)
        except Exception as exc:  # a protocol error: this connection is done for
            self.fail(f"bad HTTP response: {exc}")
            return
        for response in responses:
            pending, self.pending = self.pending, None
            if pending is None:
                self.fail("a response nobody asked for")
                return
            self.pool.done(self, pending, response)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.pool.lost(self)


class HttpPool:
    """``size`` keep-alive connections; requests beyond them wait in a bounded backlog, in order.

    ``submit`` never blocks and never creates a task: the publisher's hot path. ``request``
    is the awaitable form for handshakes.
    """

    def __init__(self, host: str, port: int, size: int, backlog_limit: int = 100_000) -> None:
        self.host, self.port, self.size = host, port, size
        self.hostport = f"{host}:{port}"
        self.idle: list[HttpConn] = []
        self.conns: list[HttpConn] = []
        self.backlog: deque[tuple[bytes, Any, OnResponse]] = deque()
        self.backlog_limit = backlog_limit

    async def open(self) -> HttpPool:
        for _ in range(self.size):
            conn = await connect(lambda: HttpConn(self), self.host, self.port)
            assert isinstance(conn, HttpConn)
            self.conns.append(conn)
            self.idle.append(conn)
        return self

    def submit(self, request: bytes, tag: Any, on_response: OnResponse) -> bool:
        """Send now on an idle connection, else queue; False if the backlog is full."""
        if self.idle:
            self.idle.pop().send(request, tag, on_response)
            return True
        if len(self.backlog) >= self.backlog_limit:
            return False
        self.backlog.append((request, tag, on_response))
        return True

    def post(self, path: str, body: bytes, headers: str = "") -> bytes:
        return http_request("POST", path, self.hostport, body, headers)

    def template(self, path: str, headers: str = "") -> bytes:
        """A POST to ``path`` up to its body's length, for ``wire.post_with`` on a hot path."""
        return post_template(path, self.hostport, headers)

    async def request(self, request: bytes) -> Response:
        """Send and await the response; ``ConnectionError`` if its connection dies first."""
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def answered(_: Any, response: Response | None) -> None:
            if future.done():
                return
            if response is None:
                future.set_exception(ConnectionError("the connection closed before the response"))
            else:
                future.set_result(response)

        if not self.submit(request, None, answered):
            raise ConnectionError("HTTP pool backlog full")
        return await future

    def done(self, conn: HttpConn, pending: tuple[Any, OnResponse], response: Response) -> None:
        if self.backlog:
            conn.send(*self.backlog.popleft())
        else:
            self.idle.append(conn)
        tag, on_response = pending
        on_response(tag, response)

    def lost(self, conn: HttpConn) -> None:
        if conn in self.idle:
            self.idle.remove(conn)
        pending, conn.pending = conn.pending, None
        if pending is not None:
            pending[1](pending[0], None)

    @property
    def alive(self) -> int:
        return sum(1 for c in self.conns if c.ended is None)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
