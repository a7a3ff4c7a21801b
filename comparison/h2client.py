"""Minimal HTTP clients for comparison/proxy_overhead.py: HTTP/2 over ONE TLS connection, on
the ``h2`` library (what a browser does with its tabs' requests to one origin, every request a
stream of the connection), and plain HTTP/1.1 with a connection per request in flight, equally
thin, so that the two sides' latencies differ by the servers and the protocol, not the client.

httpx's HTTP/2 (httpcore) reads the socket for one stream at a time: while a task waits on an
idle event stream, the answers of the connection's other streams wait with it (a third SSE
stream's headers took until the next ping to arrive), so it cannot hold many streams at once.
Here one reader task reads the connection and hands each stream its events as they come.
For measurements on loopback (comparison/proxy_overhead.py); the certificate is not checked.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import orjson


@dataclass
class Stream:
    """One request's answer: its status once the headers came, then its body's chunks."""

    status: asyncio.Future[int]
    chunks: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)  # None: the stream ended

    async def body(self) -> bytes:
        parts = []
        while (chunk := await self.chunks.get()) is not None:
            parts.append(chunk)
        return b"".join(parts)


class H2Client:
    """``await H2Client.connect(host, port)``, then ``request``/``post_json``/``sse``; ``close()``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str) -> None:
        self.reader, self.writer, self.authority = reader, writer, authority
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.streams: dict[int, Stream] = {}
        self.failed: BaseException | None = None
        self.goaway: int | None = None  # the last stream id the server takes, once it said GOAWAY
        self.requests = 0
        # nginx ends a connection (GOAWAY) after keepalive_requests (1000) requests; h2 refuses
        # the frames of streams still answering after a GOAWAY, so no more than this are sent.
        self.max_requests = 999
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(2**30)  # the connection's window: never the limit here
        self._flush()
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, host: str, port: int) -> H2Client:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        protocol = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        if protocol != "h2":
            writer.close()
            raise RuntimeError(f"{host}:{port} chose {protocol!r} by ALPN, not h2")
        return cls(reader, writer, f"{host}:{port}")

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    async def _read(self) -> None:
        try:
            while data := await self.reader.read(65536):
                for event in self.conn.receive_data(data):
                    self._handle(event)
                self._flush()
            raise ConnectionError("the server closed the connection")
        except BaseException as exc:
            self.failed = exc
            for stream in self.streams.values():
                if not stream.status.done():
                    stream.status.set_exception(ConnectionError(f"connection lost: {exc!r}"))
                stream.chunks.put_nowait(None)
            if not isinstance(exc, asyncio.CancelledError | ConnectionError):
                raise

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream and not stream.status.done():
                status = dict(event.headers or [])[b":status"]
                stream.status.set_result(int(status))
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if stream:
                stream.chunks.put_nowait(event.data or b"")
        elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
            ended = self.streams.pop(event.stream_id, None)
            if ended:
                if not ended.status.done():
                    ended.status.set_exception(ConnectionError(f"stream {event.stream_id} reset"))
                ended.chunks.put_nowait(None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            # GOAWAY: nginx sends it after keepalive_requests (1000) streams. The streams it
            # took go on; new requests need a new connection (H2Connections opens it).
            self.goaway = event.last_stream_id if event.last_stream_id is not None else 0
            for stream_id in [i for i in self.streams if i > self.goaway]:
                refused = self.streams.pop(stream_id)
                if not refused.status.done():
                    refused.status.set_exception(ConnectionError(f"stream {stream_id} refused by GOAWAY"))
                refused.chunks.put_nowait(None)
            if event.error_code:
                raise ConnectionError(f"the server ended the connection: {event.error_code!r}")

    @property
    def usable(self) -> bool:
        return self.failed is None and self.goaway is None and self.requests < self.max_requests

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Stream:
        if not self.usable:
            raise ConnectionError(f"connection not usable: {self.failed!r}, GOAWAY {self.goaway}")
        stream_id = self.conn.get_next_available_stream_id()
        self.requests += 1
        stream = Stream(asyncio.get_running_loop().create_future())
        self.streams[stream_id] = stream
        sent = [(":method", method), (":scheme", "https"), (":authority", self.authority), (":path", path),
                *(headers or {}).items()]
        if body:
            sent.append(("content-length", str(len(body))))
        self.conn.send_headers(stream_id, sent, end_stream=not body)
        if body:  # small bodies: well within the stream's initial window
            self.conn.send_data(stream_id, body, end_stream=True)
        self._flush()
        return stream

    async def get(self, path: str) -> tuple[int, bytes]:
        stream = self.request("GET", path)
        return await stream.status, await stream.body()

    async def post_json(self, path: str, payload: object, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        stream = self.request("POST", path, {"content-type": "application/json", **(headers or {})},
                              orjson.dumps(payload))
        return await stream.status, await stream.body()

    async def sse(self, path: str) -> AsyncIterator[tuple[str, str]]:
        """The (event, data) frames of an event stream at ``path``, as they arrive."""
        stream = self.request("GET", path, {"accept": "text/event-stream"})
        status = await stream.status
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {(await stream.body())[:200]!r}")

        async def chunks() -> AsyncIterator[bytes]:
            while (chunk := await stream.chunks.get()) is not None:
                yield chunk

        async for frame in sse_frames(chunks()):
            yield frame

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


class H2Connections:
    """What a browser does with one origin over HTTP/2: every request on the one connection;
    when the server ends it (nginx: GOAWAY after keepalive_requests, 1000 requests: here, just
    before), the streams under way finish on it and new requests go on a new one. ``opened``:
    how many connections that took."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.current: H2Client | None = None
        self.all: list[H2Client] = []

    async def client(self) -> H2Client:
        if self.current is None or not self.current.usable:
            self.current = await H2Client.connect(self.host, self.port)
            self.all.append(self.current)
        return self.current

    @property
    def opened(self) -> int:
        return len(self.all)

    async def get(self, path: str) -> tuple[int, bytes]:
        return await (await self.client()).get(path)

    async def post_json(self, path: str, payload: object, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return await (await self.client()).post_json(path, payload, headers)

    async def sse(self, path: str) -> AsyncIterator[tuple[str, str]]:
        async for frame in (await self.client()).sse(path):
            yield frame

    async def close(self) -> None:
        for client in self.all:
            await client.close()


async def sse_frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, str]]:
    """(event, data) of each event-stream frame in ``chunks`` (comments and id lines skipped)."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        while b"\n\n" in pending:
            block, pending = pending.split(b"\n\n", 1)
            name, data = "message", []
            for line in block.decode().split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
            if data:
                yield name, "\n".join(data)


class H1Client:
    """Plain HTTP/1.1 to ``host:port`` with H2Client's calls: kept-alive connections, one per
    request in flight; an event stream holds one of its own for as long as it is read."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open: set[asyncio.StreamWriter] = set()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.open.add(writer)
        return reader, writer

    async def _send(self, method: str, path: str, headers: dict[str, str], body: bytes
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, dict[str, str]]:
        reader, writer = await self._connection()
        head = [f"{method} {path} HTTP/1.1", f"host: {self.host}:{self.port}", *(f"{k}: {v}" for k, v in headers.items())]
        if body or method == "POST":
            head.append(f"content-length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        return reader, writer, status, fields

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader, fields: dict[str, str]) -> AsyncIterator[bytes]:
        if fields.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                yield (await reader.readexactly(size + 2))[:-2]
            await reader.readuntil(b"\r\n")  # no trailers
        else:
            yield await reader.readexactly(int(fields.get("content-length", "0")))

    async def _request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        reader, writer, status, fields = await self._send(method, path, headers, body)
        data = b"".join([chunk async for chunk in self._chunks(reader, fields)])
        if fields.get("connection", "").lower() == "close":
            writer.close()
            self.open.discard(writer)
        else:
            self.idle.append((reader, writer))
        return status, data

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self._request("GET", path, {})

    async def post_json(self, path: str, payload: object, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return await self._request("POST", path, {"content-type": "application/json", **(headers or {})},
                                   orjson.dumps(payload))

    async def sse(self, path: str) -> AsyncIterator[tuple[str, str]]:
        reader, writer, status, fields = await self._send("GET", path, {"accept": "text/event-stream"}, b"")
        try:
            if status != 200:
                raise RuntimeError(f"GET {path}: {status}")
            async for frame in sse_frames(self._chunks(reader, fields)):
                yield frame
        finally:
            writer.close()
            self.open.discard(writer)

    async def close(self) -> None:
        for writer in self.open:
            writer.close()
        self.open.clear()
        self.idle.clear()
