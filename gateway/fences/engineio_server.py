"""What the Socket.IO transport borrows from python-socketio, python-engineio and asyncio.

``gateway/transports/socketio_server.py`` fans a room event out itself: it encodes the
Socket.IO packet once and puts it straight on each member's Engine.IO socket queue, or
writes it straight to that socket's idle WebSocket, where python-socketio's ``emit``
would start a task per recipient. To do that it needs these names, which the libraries
use but do not document as API; this module is the only place that touches them.

python-socketio ``AsyncServer``
  ``eio``: the Engine.IO server underneath, to reach its sockets.
  ``packet_class``: the Socket.IO packet class the server encodes with (its ``serializer``).
  ``manager.eio_sid_from_sid(sid, namespace)``: the Engine.IO socket of a Socket.IO
  connection, so a channel can be written to without python-socketio's room manager.

python-engineio ``AsyncServer``
  ``sockets``: the open sockets by Engine.IO sid (the library deletes a socket here
  when it closes).
  ``create_queue``: the factory of each new socket's ``queue``, replaced per server so
  that every queue counts the bytes it holds (``transports/byte_queue.py``).

python-engineio ``AsyncSocket``
  ``sid``: its Engine.IO sid.
  ``queue``: the packets its writer task sends (to the WebSocket, or the next poll);
  the fan-out puts on it directly, skipping ``AsyncSocket.send``'s three coroutines.
  ``closed``: set once the socket is closing: nothing more is written to it.
  ``upgraded`` / ``upgrading``: on a WebSocket / switching from polling to one. A
  direct WebSocket write only happens upgraded and not mid-upgrade.

asyncio ``Queue``
  ``_getters``: the futures of ``get()`` calls parked on an empty queue: a socket's
  writer is waiting, so nothing of it is in flight and a direct write cannot overtake.
  ``_put`` / ``_get``: the hooks its own subclasses (``PriorityQueue``,
  ``LifoQueue``) override; ``ObservedQueue`` turns them into ``added``/``removed``.

python-engineio ``AsyncSocket``, for one long-poll shared by many polling connections
(``transports/socketio_multiplex.py``)
  ``queue`` again: a shared poll takes packets off it as the socket's own poll would, with
  ``task_done`` for each (``close(wait=True)`` joins the queue); ``None`` on it means the
  socket closed, and is put back for anyone else waiting, as the library does.
  ``payload.Payload(packets=...).encode()``: the text body of a polling answer.

python-engineio ``AsyncServer``, for a poll left waiting by a client that closed
  ``handlers["disconnect"]``: the handler python-socketio registered (``eio.on``), wrapped
  by ``wake_polls_on_client_close``; ``reason.CLIENT_DISCONNECT``: the reason it gets when
  the client sent Engine.IO's CLOSE. The library then closes the socket without queueing a
  CLOSE of its own (``close(abort=True)``), so a long-poll of that socket parked in the
  server waited for its queue until pingInterval + pingTimeout; ``None`` on the queue (the
  library's own signal of a closed socket) answers it at once.

If a library changes any of these, ``tests/test_fences_engineio.py`` fails. At run
time, ``writer_idle`` answers False when a flag it reads is missing (every packet then
takes the socket's queue, the library's own path).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import socketio
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from socketio import packet as sio_packet


class EngineSocket(Protocol):
    """The part of python-engineio's ``AsyncSocket`` the fan-out reads."""

    sid: str
    queue: asyncio.Queue[Any]
    closed: bool


def use_queues(server: socketio.AsyncServer, factory: Callable[[], asyncio.Queue[Any]]) -> None:
    """Make every Engine.IO socket of ``server`` created from now on queue its packets in ``factory()``."""
    server.eio.create_queue = factory


def wake_polls_on_client_close(server: socketio.AsyncServer) -> None:
    """When a polling client closes (Engine.IO CLOSE), answer its poll still waiting in the
    server at once, instead of after pingInterval + pingTimeout (a request, and its task, held
    that long per closed tab: at shutdown the server cancels them, "timeout graceful shutdown
    exceeded")."""
    eio = server.eio
    inner = eio.handlers["disconnect"]
    client_close = eio.reason.CLIENT_DISCONNECT

    async def disconnect(eio_sid: str, reason: Any = None) -> Any:
        try:
            return await inner(eio_sid, reason)
        finally:
            socket = eio.sockets.get(eio_sid)
            if reason == client_close and socket is not None and polling(socket):
                socket.queue.put_nowait(None)

    eio.on("disconnect", disconnect)


def engine_sid(server: socketio.AsyncServer, sio_sid: str, namespace: str) -> str | None:
    """The Engine.IO sid under a (pre-)connected Socket.IO connection; None if unknown."""
    eio_sid: str | None = server.manager.eio_sid_from_sid(sio_sid, namespace)
    return eio_sid


def open_socket(server: socketio.AsyncServer, eio_sid: str | None) -> EngineSocket | None:
    """The Engine.IO socket ``eio_sid`` if it is open; None once it is closing or gone."""
    socket: EngineSocket | None = server.eio.sockets.get(eio_sid)
    return None if socket is None or socket.closed else socket


def engine_sockets(server: socketio.AsyncServer) -> list[EngineSocket]:
    """Every Engine.IO socket of ``server`` (a copy: safe to iterate while sockets come and go)."""
    return list(server.eio.sockets.values())


def event_packets(
    server: socketio.AsyncServer, namespace: str, event: str, *args: Any
) -> tuple[list[eio_packet.Packet], str | None]:
    """One Socket.IO EVENT (``event`` with ``args``) as the Engine.IO MESSAGE packets that carry
    it, encoded once; and, when it is a single text packet, the WebSocket text frame its writer
    would send."""
    encoded = server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args]).encode()
    packets = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in (encoded if isinstance(encoded, list) else [encoded])]
    text = packets[0].encode() if len(packets) == 1 and not packets[0].binary else None
    return packets, text


async def next_packet(socket: EngineSocket) -> eio_packet.Packet | None:
    """Wait for the next packet ``socket``'s poll would send; None: the socket closed.

    Cancelled while it waits, it takes nothing (``asyncio.Queue.get`` leaves the item)."""
    item: eio_packet.Packet | None = await socket.queue.get()
    socket.queue.task_done()
    if item is None:
        socket.queue.put_nowait(None)  # the library's signal stays for whoever else waits
    return item


def more_packets(socket: EngineSocket, budget: int) -> tuple[list[eio_packet.Packet], bool]:
    """The packets ``socket`` has queued now, until about ``budget`` bytes; and whether it closed."""
    packets: list[eio_packet.Packet] = []
    while budget > 0:
        try:
            item = socket.queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        socket.queue.task_done()
        if item is None:
            socket.queue.put_nowait(None)
            return packets, True
        packets.append(item)
        budget -= packet_size(item)
    return packets, False


def packet_size(item: eio_packet.Packet) -> int:
    """About the bytes ``item`` takes in a polling answer."""
    data = item.data
    return 2 + (len(data) if isinstance(data, (str, bytes)) else len(str(data)))


def polling_payload(packets: list[eio_packet.Packet]) -> str:
    """``packets`` as the text body of a long-polling answer (Engine.IO 4: base64 for binary)."""
    encoded: str = eio_payload.Payload(packets=packets).encode()
    return encoded


def polling(socket: EngineSocket) -> bool:
    """True if ``socket`` is on long-polling: neither upgraded to a WebSocket nor upgrading."""
    return not getattr(socket, "upgraded", True) and not getattr(socket, "upgrading", True)


def writer_idle(socket: EngineSocket) -> bool:
    """True if ``socket`` is on a WebSocket (not mid-upgrade) and its writer task is
    parked on its empty queue: then nothing of the socket's is in flight."""
    queue = socket.queue
    return (
        getattr(socket, "upgraded", False) and not getattr(socket, "upgrading", True)
        and queue.empty() and bool(getattr(queue, "_getters", None))
    )


class ObservedQueue(asyncio.Queue[Any]):
    """An ``asyncio.Queue`` that reports each item as it goes in (``added``) and out (``removed``)."""

    def added(self, item: Any) -> None:
        """``item`` was just queued."""

    def removed(self, item: Any) -> None:
        """``item`` was just taken off the queue."""

    def _put(self, item: Any) -> None:
        super()._put(item)
        self.added(item)

    def _get(self) -> Any:
        item = super()._get()
        self.removed(item)
        return item
