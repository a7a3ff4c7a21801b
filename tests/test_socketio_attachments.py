"""Binary attachments held for a Socket.IO socket are bounded (docs/protocol.md, "Binary payloads";
gateway/fences/socketio_attachments.py): a packet announcing more than
``GATEWAY_MAX_BINARY_ATTACHMENTS``, or whose attachments held before its last pass ``maxPayload``
bytes, ends its socket (``close {"reason": "binary_attachments", "reconnect": false}``, counted in
``gateway_dropped_total``), the attachments are let go and nothing of the packet reaches a room;
ordinary binary packets, and the ``payload_too_large`` answer just over the limit, are unchanged.

A real gateway on 127.0.0.1; the attacker is a raw WebSocket client (the ``websockets`` library)
writing Engine.IO / Socket.IO frames by hand, the others python-socketio clients.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from gateway.fences.socketio_attachments import held_attachment_bytes
from gateway.transports.socketio_server import SocketIOTransport

from .drivers import SocketIODriver, expect_error
from .servers import ThreadedGateway, timeout, wait_state

LIMIT = 64 * 1024  # the gateway's maxPayload here
CLOSE = '42/chat,["close",{"reason":"binary_attachments","reconnect":false}]'


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    # Default liveness (25 s + 20 s): a WebSocket that ends within seconds was ended by the gateway.
    gateway = ThreadedGateway(max_payload=LIMIT).start()
    yield gateway
    gateway.stop()


def _held(gw: ThreadedGateway) -> int:
    async def read() -> int:
        transport = gw.gateway.transports["socketio"]
        assert isinstance(transport, SocketIOTransport)
        return held_attachment_bytes(transport.server)

    held: int = gw.run(read())
    return held


def _refusals(gw: ThreadedGateway) -> float:
    value: float = gw.gateway.metrics.dropped.labels("binary_attachments")._value.get()
    return value


def _recv_until(ws: ClientConnection, prefix: str) -> str:
    while not (text := str(ws.recv(timeout(5)))).startswith(prefix):
        pass
    return text


def _attacker(gw: ThreadedGateway, room: str) -> tuple[ClientConnection, str]:
    """A raw client connected to /chat and in ``room``; its session's sid."""
    ws = ws_connect(f"ws://127.0.0.1:{gw.port}/socket.io/?EIO=4&transport=websocket", open_timeout=timeout(5))
    _recv_until(ws, "0{")
    ws.send("40/chat,")
    sid = re.search(r'"open",\{"sid":"([^"]+)"', _recv_until(ws, '42/chat,["open"'))[1]  # type: ignore[index]
    ws.send(f'42/chat,0["join",{{"room":"{room}"}}]')
    assert '"ok":true' in _recv_until(ws, "43/chat,0")
    return ws, sid


def _attack(ws: ClientConnection, frames: list[str | bytes]) -> list[str]:
    """Send ``frames`` without reading; then everything the gateway sends until the connection
    ends (within seconds, or this fails)."""
    try:
        for frame in frames:
            ws.send(frame)
    except ConnectionClosed:  # ended before all were sent: what should happen
        pass
    got: list[str] = []
    deadline = time.monotonic() + timeout(5)
    try:
        while True:
            got.append(str(ws.recv(max(deadline - time.monotonic(), 0.01))))
    except ConnectionClosed:
        return got


async def _first_message(watcher: SocketIODriver, room: str) -> object:
    """What the first room event ``watcher`` got in ``room`` carries."""
    await watcher.until(lambda: bool(watcher.room_events(room)), what=f"an event in {room}")
    return watcher.room_events(room)[0]["data"]


@pytest.mark.parametrize(
    ("announced", "attachments"),
    [
        # a million announced: refused at the header
        (1_000_000, [b"\0" * 1000] * 3),
        # the most allowed, each within Engine.IO's bound, but the first two held over maxPayload;
        # the packet places only the last (a few bytes): python-socketio alone would publish it
        (10, [b"\0" * 40_000, b"\0" * 40_000] + [b"\0" * 10] * 8),
    ],
)
async def test_a_packet_over_the_attachment_bounds_ends_its_socket_and_reaches_nothing(
    gw: ThreadedGateway, announced: int, attachments: list[bytes]
) -> None:
    room = f"att-{uuid.uuid4().hex[:8]}"
    watcher = SocketIODriver(gw.url, ["websocket"])
    await watcher.connect("/chat")
    await watcher.join(room)
    ws, sid = _attacker(gw, room)
    try:
        before = _refusals(gw)
        header = f'45{announced}-/chat,["publish",{{"room":"{room}","data":{{"_placeholder":true,"num":{len(attachments) - 1}}}}}]'
        frames: list[str | bytes] = [header, *attachments]
        if announced == 10:  # within the bound first: the gateway holds what it says, then lets go
            ws.send(frames.pop(0)), ws.send(frames.pop(0))
            await wait_state(lambda: _held(gw) == 40_000, what="the first attachment held")
        got = _attack(ws, frames)
        assert CLOSE in got and got.index("1") > got.index(CLOSE)  # told why, then Engine.IO's close
        assert _refusals(gw) == before + 1
        assert _held(gw) == 0  # the pending attachments were let go
        await wait_state(lambda: gw.session_state(sid) == "detached", what="the attacker's session detached")
        # nothing of the packet reached the room: the first event it has since is this one
        await watcher.publish(room, b"after", includeSelf=True)
        assert await _first_message(watcher, room) == b"after"
    finally:
        ws.close()
        await watcher.close()


async def test_binary_packets_within_the_bounds_are_unchanged(gw: ThreadedGateway) -> None:
    room = f"att-{uuid.uuid4().hex[:8]}"
    sio = SocketIODriver(gw.url, ["websocket"])
    await sio.connect("/chat")
    try:
        await sio.join(room)
        ten = [os.urandom(1000 + i) for i in range(10)]  # the most one packet may carry
        assert await sio.emit("echo", ten) == ten
        # just over maxPayload, the first attachment held within it: the gate's answer, connection kept
        halves = [os.urandom(LIMIT // 2 + 1), os.urandom(LIMIT // 2)]
        await expect_error("payload_too_large", sio.publish(room, halves))
        await sio.publish(room, {"file": ten[0]}, includeSelf=True)
        assert await _first_message(sio, room) == {"file": ten[0]}
        assert _held(gw) == 0
    finally:
        await sio.close()
