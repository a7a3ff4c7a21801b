"""``gateway.fences.engineio_server``: the library internals it names still exist and behave as it assumes.

Real objects throughout: a python-socketio ``AsyncServer``, python-engineio
``AsyncSocket``s on its Engine.IO server, ``asyncio.Queue``. If python-socketio,
python-engineio or Python rename or change any of these, a test here fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import engineio
import pytest
import socketio
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from gateway.fences.engineio_server import (
    ObservedQueue,
    engine_sid,
    engine_sockets,
    event_packets,
    more_packets,
    next_packet,
    open_socket,
    polling,
    polling_payload,
    use_queues,
    writer_idle,
)
from gateway.transports.byte_queue import ByteQueue


@pytest.fixture
def server() -> socketio.AsyncServer:
    return socketio.AsyncServer(async_mode="asgi")


def _socket(server: socketio.AsyncServer, sid: str) -> AsyncSocket:
    """A socket as python-engineio makes one on a handshake, registered where it keeps them."""
    socket = AsyncSocket(server.eio, sid)
    server.eio.sockets[sid] = socket
    return socket


@contextlib.contextmanager
def _parked_getter(queue: asyncio.Queue[object]) -> Iterator[asyncio.Task[object]]:
    task: asyncio.Task[object] = asyncio.ensure_future(queue.get())
    try:
        yield task
    finally:
        task.cancel()


def test_the_socketio_server_has_an_engineio_server_with_a_socket_table(server: socketio.AsyncServer) -> None:
    assert isinstance(server.eio, engineio.AsyncServer)
    assert server.eio.sockets == {}
    assert engine_sockets(server) == []


def test_new_sockets_take_their_queue_from_the_factory_and_start_closed_to_nothing(
    server: socketio.AsyncServer,
) -> None:
    use_queues(server, ByteQueue)
    socket = _socket(server, "e1")
    assert isinstance(socket.queue, ByteQueue)
    assert socket.sid == "e1"
    assert (socket.closed, socket.upgraded, socket.upgrading) == (False, False, False)
    assert engine_sockets(server) == [socket]


async def test_a_closed_socket_is_not_open(server: socketio.AsyncServer) -> None:
    socket = _socket(server, "e1")
    assert open_socket(server, "e1") is socket
    assert open_socket(server, "nope") is None and open_socket(server, None) is None
    await socket.close(wait=False, abort=True)  # what python-engineio does when a client goes
    assert socket.closed
    assert open_socket(server, "e1") is None


async def test_the_manager_maps_a_socketio_sid_to_its_engineio_sid(server: socketio.AsyncServer) -> None:
    sio_sid = await server.manager.pre_connect("e1", "/chat")  # what a CONNECT packet does first
    assert isinstance(sio_sid, str) and sio_sid != "e1"
    assert engine_sid(server, sio_sid, "/chat") == "e1"
    assert engine_sid(server, sio_sid, "/other") is None
    assert engine_sid(server, "unknown", "/chat") is None


def test_an_event_is_one_text_message_its_writer_frames_with_a_4(server: socketio.AsyncServer) -> None:
    packets, text = event_packets(server, "/chat", "news", {"a": [1, "é"]})
    assert len(packets) == 1 and packets[0].packet_type == engineio.packet.MESSAGE
    assert text is not None and text.startswith("42/chat,")
    assert text == packets[0].encode()  # exactly what the Engine.IO writer would send
    decoded = sio_packet.Packet(encoded_packet=packets[0].data)
    assert (decoded.packet_type, decoded.namespace, decoded.data) == (sio_packet.EVENT, "/chat", ["news", {"a": [1, "é"]}])


def test_a_binary_event_is_several_messages_and_no_single_text_frame(server: socketio.AsyncServer) -> None:
    packets, text = event_packets(server, "/", "blob", b"\x00\x01")
    assert text is None
    assert len(packets) == 2 and packets[1].data == b"\x00\x01" and packets[1].binary


async def test_writer_idle_only_on_an_upgraded_socket_whose_writer_waits_on_an_empty_queue(
    server: socketio.AsyncServer,
) -> None:
    socket = _socket(server, "e1")
    with _parked_getter(socket.queue) as writer:
        await asyncio.sleep(0)  # the getter parks
        assert socket.queue._getters  # asyncio's parked getters, what writer_idle reads
        assert not writer_idle(socket)  # still polling
        socket.upgraded = True  # as python-engineio sets it once the WebSocket took over
        assert writer_idle(socket)
        socket.upgrading = True
        assert not writer_idle(socket)
        socket.upgrading = False
        socket.queue.put_nowait("packet")
        assert not writer_idle(socket)  # something is queued: a direct write would overtake it
        assert await writer == "packet"
    assert not socket.queue._getters
    assert not writer_idle(socket)  # nobody waits: the writer is busy sending


async def test_an_observed_queue_sees_every_item_in_and_out() -> None:
    seen: list[tuple[str, object]] = []

    class Recording(ObservedQueue):
        def added(self, item: object) -> None:
            seen.append(("in", item))

        def removed(self, item: object) -> None:
            seen.append(("out", item))

    queue = Recording()
    queue.put_nowait(1)
    await queue.put(2)
    assert queue.get_nowait() == 1
    with _parked_getter(queue) as getter:
        assert await getter == 2
    with _parked_getter(queue) as getter:
        await asyncio.sleep(0)
        queue.put_nowait(3)  # straight to a waiting getter: through the queue all the same
        assert await getter == 3
    assert seen == [("in", 1), ("in", 2), ("out", 1), ("out", 2), ("in", 3), ("out", 3)]


async def test_a_byte_queue_holds_its_packets_data_length(server: socketio.AsyncServer) -> None:
    queue = ByteQueue()
    packets, _ = event_packets(server, "/", "e", "x" * 100)
    queue.put_nowait(packets[0])
    queue.put_nowait(engineio.packet.Packet(engineio.packet.MESSAGE, b"\x00" * 7))
    queue.put_nowait(None)  # the writer's stop sentinel weighs nothing
    assert queue.held == len(packets[0].data) + 7
    queue.get_nowait()
    assert queue.held == 7
    queue.get_nowait(), queue.get_nowait()
    assert queue.held == 0


async def test_a_shared_poll_takes_packets_as_the_sockets_own_poll_would(server: socketio.AsyncServer) -> None:
    """next_packet / more_packets take packets off the socket's queue with task_done (so a
    closing socket's queue.join() returns), leave None (the library's 'closed') on it, and
    polling_payload is the body the library's own poll answer has."""
    socket = _socket(server, "shared")
    packets = [eio_packet.Packet(eio_packet.MESSAGE, "2/chat,[\"a\"]"), eio_packet.Packet(eio_packet.PING),
               eio_packet.Packet(eio_packet.MESSAGE, b"\x00\x01")]
    for item in packets:
        await socket.queue.put(item)
    first = await next_packet(socket)
    more, closed = more_packets(socket, budget=10_000)
    assert [first, *more] == packets and not closed
    await asyncio.wait_for(socket.queue.join(), 1)  # every get was marked done
    assert polling_payload(packets) == '42/chat,["a"]\x1e2\x1ebAAE='
    # A wait cancelled before a packet comes takes none.
    waiting = asyncio.ensure_future(next_packet(socket))
    await asyncio.sleep(0)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    await socket.queue.put(packets[1])
    assert await next_packet(socket) is packets[1]
    # The library's own "closed" (None) is seen and left for anyone else waiting.
    await socket.queue.put(packets[0])
    socket.queue.put_nowait(None)
    assert more_packets(socket, budget=10_000) == ([packets[0]], True)
    assert await next_packet(socket) is None
    assert socket.queue.get_nowait() is None
    # The budget bounds what one answer takes (at least one packet).
    for item in packets:
        await socket.queue.put(item)
    taken, _ = more_packets(socket, budget=1)
    assert taken == packets[:1] and socket.queue.qsize() == 2


async def test_a_socket_is_polling_until_it_upgrades(server: socketio.AsyncServer) -> None:
    socket = _socket(server, "p1")
    assert polling(socket)
    socket.upgrading = True  # what _upgrade_websocket sets first, then upgraded
    assert not polling(socket)
    socket.upgrading, socket.upgraded = False, True
    assert not polling(socket)


async def test_a_polling_clients_close_answers_its_parked_poll_at_once() -> None:
    """``wake_polls_on_client_close``: the client's CLOSE packet (POST) answers its poll waiting
    in the server, not pingInterval + pingTimeout later (the gateway's: 25 + 20 s)."""
    import httpx

    from .servers import ThreadedGateway, timeout, wait_state

    gw = ThreadedGateway().start()
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=timeout(10)) as http:
            opened = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
            assert opened.status_code == 200 and opened.text.startswith("0{"), opened.text
            eio_sid = opened.text[opened.text.index('"sid":"') + 7:].split('"')[0]
            query = {"EIO": "4", "transport": "polling", "sid": eio_sid}
            parked = asyncio.create_task(http.get("/socket.io/", params=query))
            sockets = gw.gateway.transports["socketio"].server.eio.sockets  # type: ignore[attr-defined]
            await wait_state(lambda: bool(sockets[eio_sid].queue._getters), 5, "the poll never waited in the server")
            assert (await http.post("/socket.io/", params=query, content="1")).status_code == 200  # CLOSE
            answer = await asyncio.wait_for(parked, timeout(3))
            assert answer.status_code == 200, answer.text
    finally:
        gw.stop()
