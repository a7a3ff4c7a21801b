"""Forwarding one request upstream and its response back, streaming, and relaying WebSocket frames.

Bodies go chunk by chunk as they arrive (``iter_any``), request and response at the same
time; nothing is held except by a profile's sink. WebSocket messages are relayed one by
one in both directions; pings are answered hop by hop (aiohttp's autoping), which is what
Engine.IO expects anyway since its heartbeat is in its own packets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Final, Protocol

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .classify import TransportClass, classify
from .profiles import Profile
from .stats import Counters, Stats

# RFC 9110 §7.6.1: meaningful for one hop only, never forwarded.
HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
     "te", "trailer", "transfer-encoding", "upgrade"}
)
# ws_connect makes its own handshake with the upstream; no compression, so no extensions.
WEBSOCKET_HANDSHAKE: Final = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)
# Bounded wait for the second half of a WebSocket closing handshake.
CLOSE_GRACE: Final = 2.0

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


class Marker(Protocol):
    """The connection record a request marks its traffic on (``connections.Connection`` or a no-op)."""

    def serving(self, transport_class: TransportClass) -> None: ...

    def touch(self) -> None: ...


def strip_hop_by_hop(headers: CIMultiDictProxy[str], drop: frozenset[str] = frozenset()) -> CIMultiDict[str]:
    # Copy, then delete the few names that must go: cheaper than filtering every header in Python.
    kept = CIMultiDict(headers)
    connection = headers.get("Connection")
    named = {t.strip() for t in connection.split(",")} if connection else ()
    for name in (*HOP_BY_HOP, *drop, *named):
        kept.popall(name, None)
    return kept


def upstream_headers(request: web.BaseRequest, drop: frozenset[str] = frozenset()) -> CIMultiDict[str]:
    """The request's end-to-end headers, ``Host`` kept (same-origin checks stay true), plus X-Forwarded-*."""
    headers = strip_hop_by_hop(request.headers, drop)
    peer = request.remote
    if peer:
        prior = headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    headers.setdefault("X-Forwarded-Proto", request.scheme)
    if request.host:
        headers.setdefault("X-Forwarded-Host", request.host)
    return headers


def is_websocket_upgrade(request: web.BaseRequest) -> bool:
    return "websocket" in request.headers.get("Upgrade", "").lower()


class ClientSink:
    """The innermost sink: counts and writes to the client (aiohttp drains when its buffer is full)."""

    __slots__ = ("_counters", "_response")

    def __init__(self, response: web.StreamResponse, counters: Counters) -> None:
        self._response = response
        self._counters = counters

    async def write(self, chunk: bytes) -> None:
        self._counters.bytes_to_client += len(chunk)
        await self._response.write(chunk)

    async def finish(self) -> None:
        pass


class WholeBodyResponse(web.StreamResponse):
    """A streamed response whose headers wait for the first body write, as ``web.Response``'s do.

    aiohttp writes a ``StreamResponse``'s headers at ``prepare()``, in a send of their own;
    for a body that is already complete that is one more system call (and TCP segment) per
    response than needed. Used only then: a streaming body's headers must not wait.
    (A private switch of aiohttp: if it goes away, the headers are merely sent separately.)
    """

    _send_headers_immediately = False


class Forwarder:
    """Serves one proxied request: refusal, WebSocket relay, or streamed HTTP exchange."""

    def __init__(self, upstream: str, session: aiohttp.ClientSession, profile: Profile, stats: Stats) -> None:
        self._base = upstream.rstrip("/")
        self._session = session
        self._profile = profile
        self._stats = stats

    def _url(self, request: web.BaseRequest) -> URL:
        # raw_path keeps the client's bytes (percent-encoding, query order) exactly.
        return URL(self._base + request.raw_path, encoded=True)

    async def handle(self, request: web.BaseRequest, connection: Marker) -> web.StreamResponse:
        transport_class = classify(request.path, request.query)
        counters = self._stats[transport_class]
        counters.requests += 1
        connection.serving(transport_class)
        if is_websocket_upgrade(request):
            refusal = self._profile.refuse_upgrade(request)
            if refusal is not None:
                counters.upgrades_refused += 1
                return refusal
            if web.WebSocketResponse().can_prepare(request).ok:
                return await self._websocket(request, counters, connection)
        return await self._http(request, counters, connection)

    async def _http(self, request: web.BaseRequest, counters: Counters, connection: Marker) -> web.StreamResponse:
        body = _request_body(request, counters, connection) if request.body_exists else None
        try:
            upstream = await self._session.request(
                request.method, self._url(request), headers=upstream_headers(request), data=body,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            counters.upstream_errors += 1
            return web.Response(status=502, text=f"proxy: upstream failed ({type(exc).__name__})\n")
        complete = False
        try:
            # A body that arrived whole with the headers (most small responses) lets the
            # headers go out in the same write as the body; a streaming one sends them now.
            kind = WholeBodyResponse if upstream.content.is_eof() else web.StreamResponse
            response = kind(status=upstream.status, reason=upstream.reason, headers=strip_hop_by_hop(upstream.headers))
            await response.prepare(request)
            connection.touch()
            sink = self._profile.wrap_sink(ClientSink(response, counters))
            try:
                async for chunk in upstream.content.iter_any():
                    connection.touch()
                    await sink.write(chunk)
            except ConnectionResetError:
                raise  # the client's side (aiohttp's reset error is also a ClientError)
            except (TimeoutError, aiohttp.ClientError):
                # The upstream broke mid-body: cut the client too, so it sees a truncated
                # response rather than a clean end.
                counters.upstream_errors += 1
                if request.transport is not None:
                    request.transport.abort()
                return response
            await sink.finish()
            await response.write_eof()
            complete = True
            return response
        except ConnectionResetError:
            return response  # the client went away; aiohttp discards the response
        finally:
            # A half-read upstream response must not go back to the pool.
            upstream.release() if complete else upstream.close()

    async def _websocket(self, request: web.BaseRequest, counters: Counters, connection: Marker) -> web.StreamResponse:
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            upstream = await self._session.ws_connect(
                self._url(request), headers=upstream_headers(request, WEBSOCKET_HANDSHAKE),
                protocols=protocols, max_msg_size=0, compress=0,
            )
        except aiohttp.WSServerHandshakeError as exc:
            # The upstream refused the upgrade (e.g. an unknown sid): the client gets its status.
            status = exc.status if exc.status >= 400 else 502
            return web.Response(status=status, text=f"proxy: upstream refused the upgrade ({exc.message})\n")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            counters.upstream_errors += 1
            return web.Response(status=502, text=f"proxy: upstream failed ({type(exc).__name__})\n")
        counters.websocket_upgrades += 1
        client = web.WebSocketResponse(
            protocols=[upstream.protocol] if upstream.protocol else (), max_msg_size=0, compress=False
        )
        try:
            await client.prepare(request)
            connection.touch()
            await _relay_frames(client, upstream, counters, connection)
        finally:
            # Bounded: an upstream that never answers our close frame is simply dropped.
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
                await asyncio.wait_for(upstream.close(), CLOSE_GRACE)
        return client


async def _request_body(request: web.BaseRequest, counters: Counters, connection: Marker) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_any():
        counters.bytes_to_upstream += len(chunk)
        connection.touch()
        yield chunk


async def _relay_frames(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse, counters: Counters, connection: Marker
) -> None:
    def up(n: int) -> None:
        counters.bytes_to_upstream += n

    def down(n: int) -> None:
        counters.bytes_to_client += n

    pumps = (asyncio.create_task(_pump(client, upstream, up, connection)),
             asyncio.create_task(_pump(upstream, client, down, connection)))
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        # The finished pump closed the other side, which ends the other pump: wait, bounded.
        await asyncio.wait(pumps, timeout=CLOSE_GRACE)
    finally:
        for pump in pumps:
            pump.cancel()


async def _pump(source: WebSocket, target: WebSocket, tally: Callable[[int], None], connection: Marker) -> None:
    """Relay ``source``'s messages to ``target`` until ``source`` closes or fails, then close ``target``."""
    try:
        async for message in source:  # ends at CLOSE/CLOSING/CLOSED; autoclose answers the close
            connection.touch()
            if message.type is WSMsgType.TEXT:
                text: str = message.data
                tally(len(text) if text.isascii() else len(text.encode()))
                await target.send_str(text)
            elif message.type is WSMsgType.BINARY:
                tally(len(message.data))
                await target.send_bytes(message.data)
            elif message.type is WSMsgType.ERROR:
                break
    except (ConnectionError, aiohttp.ClientError):
        pass  # the target is gone: closing it below is all that is left
    code = source.close_code
    # 1005/1006/1015 describe a missing close frame and may not be sent in one.
    if code is None or code in (WSCloseCode.ABNORMAL_CLOSURE, 1005, 1015):
        code = WSCloseCode.GOING_AWAY
    with contextlib.suppress(ConnectionError, aiohttp.ClientError):
        await target.close(code=code)
