"""Room events written straight to Engine.IO WebSockets (``DirectWebSockets``): order, backpressure, ownership.

Real uvicorn on 127.0.0.1; a real Socket.IO client, and raw WebSocket clients (the
``websockets`` library, or a bare socket where a library would keep reading) where a
client must misbehave.
"""

from __future__ import annotations

import re
import socket

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from .drivers import Driver, SocketIODriver, make_driver
from .servers import ThreadedGateway, timeout, wait_state


def _ws_url(gw: ThreadedGateway, sid: str | None = None) -> str:
    url = f"ws://127.0.0.1:{gw.port}/socket.io/?EIO=4&transport=websocket"
    return url + (f"&sid={sid}" if sid else "")


async def _fifty_in_order(gw: ThreadedGateway, pub: Driver, transports: list[str]) -> None:
    sub = SocketIODriver(gw.url, transports)
    await sub.connect("/chat")
    room = "direct-" + "-".join(transports)
    await sub.join(room), await pub.join(room)
    if transports[0] == "polling":
        await sub.until(lambda: sub.upgraded() == "websocket", what="the upgrade")
    for i in range(50):
        await pub.publish(room, i)
    await sub.until(lambda: len(sub.room_events(room)) >= 50, what="fifty events")
    assert [e["data"] for e in sub.room_events(room)] == list(range(50))
    await sub.close()


async def test_both_websocket_kinds_get_room_events_in_order() -> None:
    gw = ThreadedGateway().start()
    try:
        pub = make_driver("sse-post", gw.url)
        await pub.connect("/chat")
        for transports in (["websocket"], ["polling", "websocket"]):  # direct, and upgraded from polling
            await _fifty_in_order(gw, pub, transports)
        await pub.close()
    finally:
        gw.stop()


def _masked(text: str) -> bytes:
    """A client text frame (RFC 6455 requires a mask; a zero key leaves the payload as is)."""
    payload = text.encode()
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def _read_until(sock: socket.socket, needle: bytes, got: bytes = b"") -> bytes:
    while needle not in got:
        chunk = sock.recv(65536)
        assert chunk, f"closed before {needle!r}"
        got += chunk
    return got


async def test_a_client_that_stops_reading_keeps_its_order_and_is_cut() -> None:
    """Direct writes that must wait for the socket hold it; what follows queues behind them,
    and past GATEWAY_SESSION_QUEUE_SIZE the socket is cut. What the client did get is a
    prefix of the events, in order: nothing overtook anything."""
    gw = ThreadedGateway(session_queue_size=20).start()
    try:
        # A raw client: a library client would keep reading into its own buffers.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # no kernel autotuning: backpressure soon
        sock.settimeout(timeout(5))
        sock.connect(("127.0.0.1", gw.port))
        sock.sendall(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        got = _read_until(sock, b'0{"sid"')
        sock.sendall(_masked("40/chat,"))
        got = _read_until(sock, b'"open"', got)
        sid = re.search(rb'"open",\{"sid":"([^"]+)"', got)[1].decode()
        sock.sendall(_masked('42/chat,0["join",{"room":"flood"}]'))
        _read_until(sock, b'"joined"', got)
        pad = "x" * 60_000
        for i in range(300):  # bounded: ~18 MB, far beyond the socket buffers
            gw.run(gw.gateway.emit("/chat", "big", {"i": i, "pad": pad}, to="flood"))
            if gw.session_state(sid) == "detached":
                break
        await wait_state(lambda: gw.session_state(sid) == "detached", 10, "the cut")
        assert gw.gateway.metrics.dropped.labels("slow_consumer")._value.get() >= 1
        rest = b""
        sock.settimeout(timeout(2))
        try:
            while chunk := sock.recv(1 << 20):
                rest += chunk
        except TimeoutError:
            pass
        received = [int(i) for i in re.findall(rb'"i":(\d+)', rest)]
        assert received and received == list(range(len(received))) and len(received) < 300
        sock.close()
    finally:
        gw.stop()


async def test_a_second_websocket_naming_a_socket_gets_none_of_its_events() -> None:
    gw = ThreadedGateway().start()
    try:
        sub, pub = SocketIODriver(gw.url, ["websocket"]), make_driver("sse-post", gw.url)
        await sub.connect("/chat"), await pub.connect("/chat")
        await sub.join("mine"), await pub.join("mine")
        assert sub.client is not None
        eio_sid = sub.client.eio.sid
        heard: list[str] = []
        try:  # Engine.IO refuses a second WebSocket for an upgraded socket (403) ...
            intruder = ws_connect(_ws_url(gw, eio_sid), open_timeout=timeout(5))
        except InvalidStatus as refused:
            assert refused.response.status_code == 403
            intruder = None
        else:
            intruder.send("2probe")
        for i in range(10):
            await pub.publish("mine", i)
        await sub.until(lambda: len(sub.room_events("mine")) >= 10, what="ten events")
        assert [e["data"] for e in sub.room_events("mine")] == list(range(10))
        if intruder is not None:  # ... and if it ever did not, the gateway would not hand it the socket's events
            try:
                while True:
                    heard.append(intruder.recv(timeout(0.5)))
            except Exception:  # closed by Engine.IO, or silence
                pass
            intruder.close()
        assert not any('"mine"' in frame for frame in heard), heard
        await sub.close(), await pub.close()
    finally:
        gw.stop()
