"""Sans-I/O codecs of the load generator: bytes in, values out, no sockets, no ``await``.

The generator speaks just enough of four protocols to subscribe and publish:

* HTTP/1.1 responses, keep-alive, ``Content-Length`` or ``Transfer-Encoding: chunked``
  (``ResponseReader`` for request/response, ``ChunkedDecoder`` for a stream);
* WebSocket client framing (``ws_frame`` out, ``WsReader`` in);
* Engine.IO v4 / Socket.IO v5 packets (``sio_*``), over WebSocket or long-polling;
* the benchmark payload itself: ``SAMPLE`` finds every ``(t, seq)`` pair in a region of
  bytes with one C-level regex scan, so a delivered frame is never JSON-decoded.

Everything here is deliberately partial (no TLS, no redirects, no extensions, no
server-side masking) and fails loudly (``ProtocolError``) on what it does not expect.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

import orjson


class ProtocolError(Exception):
    """The peer sent something this minimal client does not understand."""


# -- the payload ---------------------------------------------------------------------------

#: One ``(t, seq)`` pair. ``t`` comes right before ``seq`` in every payload the publisher
#: builds; every server here keeps key order (orjson, ``json``, ``JSON.stringify``), and a
#: server that did not would show up as zero deliveries, never as wrong numbers.
SAMPLE: Final = re.compile(rb'"t": ?(\d+), ?"seq": ?(\d+)')
PAD: Final = b"x" * 64


def payload(t_ns: int, seq: int, room: bytes = b"bench") -> bytes:
    """The publish body every transport carries: ``{"room", "data": {"t", "seq", "pad"}}``."""
    return b'{"room":"%s","data":{"t":%d,"seq":%d,"pad":"%s"}}' % (room, t_ns, seq, PAD)


# -- HTTP/1.1 ------------------------------------------------------------------------------


def http_request(method: str, target: str, host: str, body: bytes = b"", headers: str = "") -> bytes:
    """A keep-alive HTTP/1.1 request. ``headers`` is extra ``Name: value\\r\\n`` lines."""
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{headers}"
    if body or method in ("POST", "PUT"):
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode("latin-1") + body


def post_template(target: str, host: str, headers: str = "") -> bytes:
    """A JSON POST up to its ``Content-Length`` value, built once per connection or session
    (``headers``: its fixed extra lines, e.g. ``X-Session-Key``) and completed per request
    by ``post_with``: the hot path formats no headers."""
    return (f"POST {target} HTTP/1.1\r\nHost: {host}\r\n{headers}"
            "Content-Type: application/json\r\nContent-Length: ").encode("latin-1")


def post_with(template: bytes, body: bytes) -> bytes:
    """``template`` (``post_template``) plus ``body``: the same bytes ``http_request`` builds."""
    return b"%s%d\r\n\r\n%s" % (template, len(body), body)


def session_key_header(key: str) -> str:
    """The header line that proves a gateway SSE session is ours (its ``open`` frame's ``key``)."""
    return f"X-Session-Key: {key}\r\n"


class ResponseHead(NamedTuple):
    status: int
    headers: dict[bytes, bytes]  # names lower-cased
    content_length: int | None
    chunked: bool


def parse_head(buf: bytes) -> tuple[ResponseHead, int] | None:
    """The response head at the start of ``buf`` and its length, or None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 65536:
            raise ProtocolError("response head over 64 KiB")
        return None
    lines = buf[:end].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = headers.get(b"content-length")
    chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
    return ResponseHead(int(parts[1]), headers, None if length is None else int(length), chunked), end + 4


class ChunkedDecoder:
    """``Transfer-Encoding: chunked``, incrementally: ``feed`` returns the body bytes decoded so far.

    The common case (one whole chunk per read, as a server writes one chunk per send)
    costs one ``find`` and one slice. Once the terminal chunk is through, ``done`` is set
    and ``rest`` holds the bytes that followed it (the next response on the connection).
    """

    __slots__ = ("_crlf", "_ending", "_head", "_left", "done", "rest")

    def __init__(self) -> None:
        self._head = b""  # an incomplete chunk-size line
        self._left = 0  # data bytes left in the current chunk
        self._crlf = 0  # bytes of a CRLF still to skip
        self._ending = False  # the terminal chunk was seen; its CRLF is being skipped
        self.done = False
        self.rest = b""

    @property
    def at_boundary(self) -> bool:
        """Between two chunks of an unfinished body: nothing half-read."""
        return not (self._head or self._left or self._crlf or self._ending or self.done)

    def feed(self, data: bytes) -> bytes:
        if not (self._head or self._left or self._crlf):
            # Fast path: exactly one whole chunk.
            eol = data.find(b"\r\n", 0, 18)
            if eol > 0:
                try:
                    end = eol + 2 + int(data[:eol], 16)
                except ValueError:
                    end = -1  # a chunk extension: the general case below
                if end + 2 == len(data) and end > eol + 2:
                    return data[eol + 2 : end]
        buf = self._head + data if self._head else data
        self._head = b""
        out: list[bytes] = []
        pos, n = 0, len(buf)
        while pos < n:
            if self._left:
                take = min(self._left, n - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    self._crlf = 2
            elif self._crlf:
                skip = min(self._crlf, n - pos)
                pos += skip
                self._crlf -= skip
                if not self._crlf and self._ending:
                    self.done = True
                    self.rest = buf[pos:]
                    break
            else:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > 1024:
                        raise ProtocolError("chunk-size line over 1 KiB")
                    self._head = buf[pos:]
                    break
                try:
                    size = int(buf[pos:eol].split(b";", 1)[0], 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {buf[pos:eol][:40]!r}") from None
                pos = eol + 2
                if size == 0:  # no trailers expected: the body ends with one more CRLF
                    self._ending, self._crlf = True, 2
                self._left = size
        if len(out) == 1:
            return out[0]
        return b"".join(out)


class Response(NamedTuple):
    status: int
    body: bytes


class ResponseReader:
    """Sequential keep-alive responses on one connection: ``feed`` returns those completed."""

    __slots__ = ("_body", "_buf", "_chunks", "_head")

    def __init__(self) -> None:
        self._buf = b""
        self._head: ResponseHead | None = None
        self._chunks: ChunkedDecoder | None = None
        self._body: list[bytes] = []

    def feed(self, data: bytes) -> list[Response]:
        buf = self._buf + data if self._buf else data
        done: list[Response] = []
        while True:
            head = self._head
            if head is None:
                parsed = parse_head(buf)
                if parsed is None:
                    break
                head, used = parsed
                buf = buf[used:]
                if head.status == 101 or (head.content_length is None and not head.chunked):
                    raise ProtocolError(f"unexpected response framing (status {head.status})")
                self._head, self._chunks, self._body = head, ChunkedDecoder() if head.chunked else None, []
            if self._chunks is not None:
                decoder = self._chunks
                self._body.append(decoder.feed(buf))
                if not decoder.done:
                    buf = b""
                    break
                buf = decoder.rest
            else:
                length = head.content_length or 0
                have = sum(map(len, self._body))
                take = min(length - have, len(buf))
                self._body.append(buf[:take])
                buf = buf[take:]
                if have + take < length:
                    break
            done.append(Response(head.status, b"".join(self._body)))
            self._head, self._chunks, self._body = None, None, []
            if not buf:
                break
        self._buf = buf
        return done


# -- WebSocket (RFC 6455), client side -------------------------------------------------------

TEXT: Final = 0x1
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
_KEY: Final = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample nonce: the server does not care


def ws_upgrade_request(target: str, host: str) -> bytes:
    """Open a WebSocket without permessage-deflate (not offered: every server runs uncompressed)."""
    return http_request(
        "GET", target, host,
        headers=f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {_KEY}\r\n"
        "Sec-WebSocket-Version: 13\r\n",
    )


def ws_frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """A client frame. The mask key is four zero bytes, which RFC 6455 allows (a client
    must mask, the key's value is not checked), so masking is a no-op here while the
    server still runs its unmasking code on every frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


class WsReader:
    """Server frames, incrementally. ``feed`` returns ``(end, frames)``: ``buf[:end]`` holds
    only complete frames (so ``SAMPLE`` can scan it in one pass without ever matching across
    a frame boundary), and ``frames`` lists the frames that need attention: every frame
    whose payload is short (Engine.IO pings, acks), control frames and reassembled
    fragments. Long, final text frames (deliveries) are not sliced out at all."""

    __slots__ = ("_frag", "buf", "short")

    def __init__(self, short: int = 1 << 30) -> None:
        self.buf = b""
        self._frag: list[bytes] | None = None
        # Text frames longer than this are not returned (a live subscriber's deliveries);
        # everything is returned by default (handshakes, the publisher's acks).
        self.short = short

    @property
    def at_boundary(self) -> bool:
        """Between two messages: no frame or fragmented message half-read."""
        return not self.buf and self._frag is None

    def feed(self, data: bytes) -> tuple[bytes, int, list[tuple[int, bytes]]]:
        """Returns ``(buf, end, frames)``; the caller scans ``buf[:end]``."""
        if not self.buf and len(data) > 4 and data[0] == 0x81:
            # Fast path: exactly one whole, final text frame that is a delivery.
            length = data[1]
            if length == 126:
                length = (data[2] << 8) | data[3]
                start = 4
            else:
                start = 2
            if (length < 126 or start == 4) and start + length == len(data) and length > self.short:
                return data, len(data), []
        buf = self.buf + data if self.buf else data
        pos, n = 0, len(buf)
        frames: list[tuple[int, bytes]] = []
        short = self.short
        while n - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1]
            if length & 0x80:
                raise ProtocolError("the server masked a frame")
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 4
            else:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            if b0 != 0x81 or length <= short:
                self._other(b0, buf[start:end], frames)
            pos = end
        self.buf = buf[pos:] if pos < n else b""
        return buf, pos, frames

    def _other(self, b0: int, payload: bytes, frames: list[tuple[int, bytes]]) -> None:
        opcode, fin = b0 & 0x0F, b0 & 0x80
        if opcode >= 0x8:  # control frames are never fragmented
            frames.append((opcode, payload))
        elif opcode == 0:
            if self._frag is None:
                raise ProtocolError("continuation frame without a start")
            self._frag.append(payload)
            if fin:
                frames.append((TEXT, b"".join(self._frag)))
                self._frag = None
        elif fin:
            frames.append((opcode, payload))
        else:
            self._frag = [payload]


# -- Engine.IO v4 / Socket.IO v5 -------------------------------------------------------------

EIO_PING: Final = b"2"
EIO_PONG: Final = b"3"
RECORD_SEP: Final = b"\x1e"  # between Engine.IO packets in a long-polling payload


def eio_path(transport: str, sid: str | None = None) -> str:
    return f"/socket.io/?EIO=4&transport={transport}" + (f"&sid={sid}" if sid else "")


def eio_open_sid(packet: bytes) -> str:
    """The sid of an Engine.IO ``open`` packet (``0{"sid": ...}``)."""
    if not packet.startswith(b"0{"):
        raise ProtocolError(f"expected an Engine.IO open packet, got {packet[:80]!r}")
    return str(orjson.loads(packet[1:])["sid"])


def sio_connect(namespace: str) -> bytes:
    return b"40" + namespace.encode() + b","


def sio_event(namespace: str, ack_id: int, event: str, body: bytes) -> bytes:
    """``42<ns>,<id>["event",<body>]`` with ``body`` already JSON."""
    return b'42%s,%d["%s",%s]' % (namespace.encode(), ack_id, event.encode(), body)


def sio_ack(packet: bytes, namespace: str) -> tuple[int, bytes] | None:
    """``(ack id, JSON args)`` of an ACK packet of ``namespace``, else None."""
    prefix = b"43" + namespace.encode() + b","
    if not packet.startswith(prefix):
        return None
    bracket = packet.find(b"[", len(prefix))
    if bracket < 0 or not packet[len(prefix) : bracket].isdigit():
        raise ProtocolError(f"malformed ack packet {packet[:80]!r}")
    return int(packet[len(prefix) : bracket]), packet[bracket:]


def ack_ok(args: bytes) -> bool:
    """Whether an ack's first argument says ``"ok": true`` (every server here acks that way)."""
    return b'"ok":true' in args or b'"ok": true' in args
