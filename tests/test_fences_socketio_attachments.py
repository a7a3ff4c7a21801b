"""The fence around python-socketio's binary attachments (gateway/fences/socketio_attachments.py):
fails if python-socketio stops decoding binary packets through its ``serializer`` class, keeping
the pending one in ``_binary_packet`` and dispatching Engine.IO messages through
``_handle_eio_message``, or if python-engineio stops closing a socket and its writer as assumed.

Real objects throughout: a python-socketio ``AsyncServer`` (only its Socket.IO sends recorded,
as in tests/test_fences_socketio_connect.py) and python-engineio ``AsyncSocket``s.
"""

from __future__ import annotations

from typing import Any

import engineio
import pytest
import socketio
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from gateway.fences.socketio_attachments import (
    AttachmentsRefused,
    bounded_packets,
    end_socket,
    guard_attachments,
    held_attachment_bytes,
)

HELD = 100  # the servers' max_held here; two attachments at most


class _Server(socketio.AsyncServer):  # type: ignore[misc]
    """A bounded AsyncServer with Socket.IO sends recorded, one client ``e1`` connected to ``/``,
    what its ``up`` handler got, and what the guard refused."""

    def __init__(self) -> None:
        super().__init__(async_mode="asgi", async_handlers=False, serializer=bounded_packets(2, HELD))
        self.sent: list[Any] = []
        self.got: list[Any] = []
        self.refused: list[tuple[str, str | None, AttachmentsRefused]] = []

        async def send_packet(eio_sid: str, pkt: Any) -> None:
            self.sent.append((eio_sid, pkt.packet_type, pkt.namespace, pkt.data))

        async def refused(eio_sid: str, sio_sid: str | None, error: AttachmentsRefused) -> None:
            self.refused.append((eio_sid, sio_sid, error))

        self._send_packet = send_packet
        self.on("up", lambda sid, *args: self.got.append(args))
        self.python_socketio_handler = self.eio.handlers["message"]
        guard_attachments(self, refused)

    async def message(self, data: Any) -> None:
        """Engine.IO message ``data`` from ``e1``, as python-engineio delivers it."""
        await self.eio.handlers["message"]("e1", data)


@pytest.fixture
async def server() -> _Server:
    server = _Server()
    server.environ["e1"] = {}
    await server._handle_connect("e1", "/", None)
    return server


def _header(count: int, namespace: str = "") -> str:
    """A BINARY_EVENT ``up`` announcing ``count`` attachments and placing only the last."""
    return f'5{count}-{namespace}["up",{{"_placeholder":true,"num":{max(count - 1, 0)}}}]'


def test_the_serializer_is_the_servers_packet_class_and_encodes_as_python_socketios() -> None:
    server = _Server()
    assert issubclass(server.packet_class, sio_packet.Packet)
    ours = server.packet_class(sio_packet.EVENT, namespace="/chat", data=["e", b"\x00", {"b": b"\x01"}]).encode()
    theirs = sio_packet.Packet(sio_packet.EVENT, namespace="/chat", data=["e", b"\x00", {"b": b"\x01"}]).encode()
    assert ours == theirs and ours[0].startswith("52-/chat,")


def test_the_guard_needs_the_bounded_packets_to_raise_its_refusals() -> None:
    async def refused(eio_sid: str, sio_sid: str | None, error: AttachmentsRefused) -> None:
        raise AssertionError("never called")

    with pytest.raises(TypeError):
        guard_attachments(socketio.AsyncServer(async_mode="asgi"), refused)


async def test_python_socketio_holds_a_binary_packet_until_its_last_attachment(server: _Server) -> None:
    # python-socketio's own handler was the one python-engineio called; the guard took its place
    assert server.python_socketio_handler == server._handle_eio_message
    assert server.eio.handlers["message"] != server._handle_eio_message
    await server.message(_header(2))
    assert "e1" in server._binary_packet and held_attachment_bytes(server) == 0
    await server.message(b"x" * HELD)  # held: up to max_held bytes
    assert held_attachment_bytes(server) == HELD and server.got == []
    await server.message(b"y" * (HELD + 1))  # the last is never held: the packet goes at once
    assert server.got == [(b"y" * (HELD + 1),)]
    assert server._binary_packet == {} and held_attachment_bytes(server) == 0 and server.refused == []


@pytest.mark.parametrize("count", [3, 0])
async def test_a_header_announcing_too_many_or_no_attachments_is_refused_and_not_kept(
    server: _Server, count: int
) -> None:
    await server.message(_header(count))
    [(eio_sid, sio_sid, error)] = server.refused
    assert (eio_sid, error.namespace) == ("e1", "/") and sio_sid == server.manager.sid_from_eio_sid("e1", "/")
    assert sio_sid is not None and f"announcing {count} attachments" in str(error)
    assert server._binary_packet == {}
    await server.message('2["up","next"]')  # the socket is not wedged: what follows is read anew
    assert server.got == [("next",)]


async def test_a_header_for_a_namespace_not_connected_is_refused_without_a_socketio_sid(server: _Server) -> None:
    await server.message(_header(9, "/elsewhere,"))
    [(_, sio_sid, error)] = server.refused
    assert sio_sid is None and error.namespace == "/elsewhere"


@pytest.mark.parametrize("attachment", [b"x" * (HELD + 1), "text"])
async def test_an_attachment_over_max_held_or_in_text_is_refused_and_let_go(server: _Server, attachment: Any) -> None:
    await server.message(_header(2))
    await server.message(attachment)
    [(eio_sid, sio_sid, error)] = server.refused
    assert eio_sid == "e1" and sio_sid is not None and error.namespace == "/"
    assert server._binary_packet == {} and held_attachment_bytes(server) == 0  # let go, not held to the end
    await server.message('2["up","next"]')
    assert server.got == [("next",)]  # nothing of the refused packet was dispatched


@pytest.mark.parametrize("upgraded", [True, False])
async def test_end_socket_disconnects_queues_close_and_stops_a_websockets_writer(
    server: _Server, upgraded: bool
) -> None:
    gone: list[str] = []
    server.on("disconnect", lambda sid, reason: gone.append(reason))
    socket = AsyncSocket(server.eio, "e1")
    server.eio.sockets["e1"] = socket
    socket.upgraded = upgraded
    await end_socket(server, "e1")
    assert socket.closed and gone == [server.reason.SERVER_DISCONNECT]  # python-socketio's disconnect ran
    [close] = await socket.poll()  # what the writer sends next: the CLOSE packet
    assert close.packet_type == engineio.packet.CLOSE
    if upgraded:
        assert await socket.poll() == []  # the writer's signal to stop and close the WebSocket
    else:
        assert socket.queue.empty()  # a polling socket's next request finds it closed
    await end_socket(server, "e1"), await end_socket(server, "unknown")  # closed or gone: nothing
    assert socket.queue.empty() and gone == [server.reason.SERVER_DISCONNECT]
