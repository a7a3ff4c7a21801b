"""A calibration server: the SSE + POST wire of the gateway on raw uvloop sockets, nothing else.

``python -m comparison.bench.servers.raw_sse --port PORT``. It answers the same requests
as the gateway's SSE transport (``GET /sse/connect``, ``POST /sse/sessions/{sid}/join``,
``.../publish``) with no log, no offsets, no queues: a publish is framed once and the same
chunk is written to every subscriber's socket. It is not a contender; it shows the
ceiling of Python on this machine and, above all, whether the generator can measure it
(if the generator saturates before this server does, no figure above that is real).

Like the gateway, its ``open`` frame gives the session a private ``key`` and a POST without
that key in ``X-Session-Key`` gets 404: the generator pays for the same header either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from typing import Any

import httptools
import uvloop

ROOMS: dict[str, dict[str, Stream]] = {}
SESSIONS: dict[str, Stream] = {}


class Stream:
    __slots__ = ("key", "sid", "transport")

    def __init__(self, sid: str, key: bytes, transport: asyncio.Transport) -> None:
        self.sid, self.key, self.transport = sid, key, transport


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def response(status: int, body: bytes) -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 400: b"Bad Request"}.get(status, b"")
    return b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        status, reason, len(body), body)


class Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.key: bytes | None = None  # this request's X-Session-Key
        self.transport: asyncio.Transport | None = None
        self.stream: Stream | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None:
            SESSIONS.pop(self.stream.sid, None)
            for members in ROOMS.values():
                members.pop(self.stream.sid, None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 13 and name.lower() == b"x-session-key":
            self.key = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        url, body, key = self.url, b"".join(self.body), self.key
        self.url, self.body, self.key = b"", [], None
        assert self.transport is not None
        self.transport.write(self.handle(url.split(b"?", 1)[0], body, key))

    def handle(self, path: bytes, body: bytes, key: bytes | None = None) -> bytes:
        if path == b"/sse/connect":
            assert self.transport is not None
            sid, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(16).encode()
            self.stream = SESSIONS[sid] = Stream(sid, secret, self.transport)
            opened = b'event: open\ndata: {"sid":"%s","key":"%s"}\n\n' % (sid.encode(), secret)
            return (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\n"
                    b"transfer-encoding: chunked\r\n\r\n" + chunk(opened))
        parts = path.decode().split("/")  # ['', 'sse', 'sessions', sid, verb]
        owner = SESSIONS.get(parts[3]) if len(parts) == 5 else None
        if owner is None or key != owner.key:  # no session, or not the caller's: the same answer
            return response(404, b'{"ok":false}')
        sid, verb = parts[3], parts[4]
        request: dict[str, Any] = json.loads(body or b"{}")
        room = request.get("room")
        if not isinstance(room, str):
            return response(400, b'{"ok":false}')
        if verb == "join":
            ROOMS.setdefault(room, {})[sid] = SESSIONS[sid]
            return response(200, b'{"ok":true,"result":{"room":"%s"}}' % room.encode())
        if verb == "publish":
            envelope = json.dumps({"event": "message", "data": request.get("data"), "room": room,
                                   "sender": sid}, separators=(",", ":")).encode()
            frame = chunk(b"event: message\ndata: " + envelope + b"\n\n")
            for member, stream in ROOMS.get(room, {}).items():
                if member != sid:
                    stream.transport.write(frame)
            return response(200, b'{"ok":true}')
        return response(404, b'{"ok":false}')


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m comparison.bench.servers.raw_sse")
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
