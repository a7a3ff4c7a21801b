"""The gateway's SSE + POST transport, as the generator speaks it.

A subscriber is one ``GET /sse/connect`` stream plus a ``POST /sse/sessions/{sid}/join``
through a shared keep-alive pool. On the stream it de-chunks, cuts at the last complete
SSE frame (``\\n\\n``) and scans that region for payloads with ``SAMPLE``; it never splits
frames, reads ``id:`` lines or decodes JSON after the ``open`` event.

The publisher is a subscriber-less session of its own (stream held open, room joined)
that POSTs ``/publish`` through a pool of keep-alive connections, one request each.

Every POST carries the session's private key (``X-Session-Key``, from the ``open`` frame's
``key``); the publisher builds its request head, key included, once (``post_template``).
"""

from __future__ import annotations

import time

import orjson

from .connection import Conn, HttpPool, connect
from .csink import Kind
from .publisher import Publisher
from .sink import Track
from .wire import SAMPLE, ChunkedDecoder, Response, http_request, payload, post_with, session_key_header

_OPEN = b"event: open\ndata: "
_MAX_TAIL = 1 << 20


class SseStream(Conn):
    """One event stream. ``track`` receives the payloads found (None: the publisher's own stream)."""

    def __init__(self, track: Track | None) -> None:
        super().__init__()
        self.track = track
        self.decode: ChunkedDecoder | None = None
        self.identity = False  # a stream without chunking (read until close)
        self.tail = b""
        self.sid: str | None = None
        self.key: str | None = None  # the session's private key: every POST must carry it

    def data_received(self, data: bytes) -> None:
        if self.decode is None and not self.identity:
            data = self._head(data)
            if not data:
                return
        body = data if self.identity else self.decode.feed(data)  # type: ignore[union-attr]
        if not self.tail and body.endswith(b"\n\n") and self.sid is not None:
            # Fast path: the read ended on a frame boundary, as a server's write does.
            if self.track is not None:
                found = SAMPLE.findall(body)
                if found:
                    self.track.add(found, time.monotonic_ns())
            return
        buf = self.tail + body if self.tail else body
        end = buf.rfind(b"\n\n")
        if end < 0:
            self.tail = buf
            if len(buf) > _MAX_TAIL:
                self.fail("an SSE frame over 1 MiB")
            return
        self.tail = buf[end + 2 :]
        if self.sid is None:
            self._open(buf[:end])
        if self.track is not None:
            found = SAMPLE.findall(buf, 0, end)
            if found:
                self.track.add(found, time.monotonic_ns())

    def handover(self) -> Kind | None:
        if self.sid is None or self.tail:
            return None
        if self.identity:
            return Kind.RAW
        return Kind.SSE_CHUNKED if self.decode is not None and self.decode.at_boundary else None

    def _head(self, data: bytes) -> bytes:
        taken = self.take_head(data, 200, "GET /sse/connect")
        if taken is None:
            return b""
        head, rest = taken
        if head.chunked:
            self.decode = ChunkedDecoder()
        else:
            self.identity = True
        return rest

    def _open(self, frames: bytes) -> None:
        i = frames.find(_OPEN)
        if i < 0:
            return
        line_end = frames.find(b"\n", i + len(_OPEN))
        data = frames[i + len(_OPEN) : line_end if line_end >= 0 else len(frames)]
        try:
            opened = orjson.loads(data)
            sid, key = opened["sid"], opened["key"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.fail(f"an open event without a sid and key: {data[:200]!r}")
            return
        if not isinstance(sid, str) or not isinstance(key, str):
            self.fail(f"an open event without a sid and key: {data[:200]!r}")
            return
        self.sid, self.key = sid, key
        self.push((sid, key))


async def open_session(
    host: str, port: int, namespace: str, room: str, join_pool: HttpPool, track: Track | None,
    *, stream_class: type[SseStream] = SseStream, local: str | None = None,
) -> SseStream:
    """Open a stream, wait for ``open``, join ``room``: the caller bounds the time.
    ``local``: the stream's source address (``connection.connect``)."""
    stream = await connect(lambda: stream_class(track), host, port, local)
    assert isinstance(stream, SseStream)
    try:
        stream.write(http_request(
            "GET", f"/sse/connect?namespace={namespace}", f"{host}:{port}",
            headers="Accept: text/event-stream\r\n",
        ))
        sid, key = await stream.next()
        response = await join_pool.request(
            join_pool.post(f"/sse/sessions/{sid}/join", b'{"room":"%s"}' % room.encode(), session_key_header(key))
        )
        if response.status != 200:
            raise ConnectionError(f"join answered {response.status}: {response.body[:200]!r}")
    except BaseException:
        stream.close()
        raise
    return stream


class SsePublisher(Publisher):
    def __init__(self, host: str, port: int, namespace: str, room: str, pool_size: int) -> None:
        super().__init__()
        self.host, self.port, self.namespace, self.room = host, port, namespace, room
        self.pool = HttpPool(host, port, pool_size)
        self.stream: SseStream | None = None
        self._template = b""  # the publish request up to its body's length, key included

    async def open(self) -> None:
        await self.pool.open()
        self.stream = stream = await open_session(self.host, self.port, self.namespace, self.room, self.pool, None)
        assert stream.sid is not None and stream.key is not None
        self._template = self.pool.template(f"/sse/sessions/{stream.sid}/publish", session_key_header(stream.key))

    def _send(self, seq: int, t_ns: int) -> bool:
        return self.pool.submit(post_with(self._template, payload(t_ns, seq, self.room.encode())), seq, self._answered)

    def _answered(self, seq: int, response: Response | None) -> None:
        if response is None:
            self.settle(seq, "connection lost")
        elif response.status != 200:
            self.settle(seq, f"HTTP {response.status}: {response.body[:120]!r}")
        else:
            self.settle(seq, None)

    @property
    def backlog(self) -> int:
        return len(self.pool.backlog)

    def close(self) -> None:
        self.pool.close()
        if self.stream is not None:
            self.stream.close()


async def open_subscribers_pool(host: str, port: int, size: int) -> HttpPool:
    """The keep-alive pool subscribers join through (closed once they all have)."""
    return await HttpPool(host, port, size).open()

