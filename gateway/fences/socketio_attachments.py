"""Bounds on the binary attachments python-socketio holds for a socket: borrowed from python-socketio.

A Socket.IO BINARY_EVENT / BINARY_ACK header (``52-/chat,["publish",{... {"_placeholder":
true,"num":0} ...}]``) announces how many attachments follow, each an Engine.IO message of
its own. python-socketio (5.x) keeps the decoded header in ``AsyncServer._binary_packet[eio_sid]``
and adds each following message to it (``Packet.add_attachment``) until the announced number
has come; only then is the packet dispatched. It accepts up to 9,999,999,999 attachments and
Engine.IO bounds each at ``maxPayload`` alone, so one socket could make the server hold any
amount of memory. The reference server refuses more than ten (socket.io-parser's
``maxAttachments``) and ends the connection.

Here, through python-socketio's public hook where it has one:

- ``bounded_packets(...)`` is a ``Packet`` subclass for ``AsyncServer(serializer=...)`` (the
  documented way to bring one's own packet class). Its ``decode`` refuses a binary header
  announcing no attachment or more than ``max_attachments``; its ``add_attachment`` refuses a
  text message where an attachment belongs (socket.io-parser does too), and an attachment that
  is not the last when those held would then pass ``max_held`` bytes. A packet's last
  attachment is never held (python-socketio dispatches the packet at once), so a packet's
  binaries may reach ``max_held`` plus that one: the payload gate then refuses them as
  ``payload_too_large`` (``docs/protocol.md``, "Binary payloads") with the connection kept.
- ``guard_attachments(...)`` has no public hook to lean on. It puts a wrapper around
  ``AsyncServer._handle_eio_message`` (the Engine.IO ``message`` handler python-socketio
  registers in its constructor) through python-engineio's ``on("message", ...)``: a
  refusal is raised inside it (the socket is not known to the packet), the wrapper drops the
  pending packet from ``_binary_packet`` (python-socketio would keep it until the socket's
  disconnect) and hands the socket to the gateway, which tells the client and calls
  ``end_socket``. python-engineio runs the handler inline (python-socketio turns its
  ``async_handlers`` off), so nothing else of the socket is read before that.
- ``end_socket`` closes the Engine.IO socket without waiting for its queue (a client that does
  not read must not hold the reader), then puts ``None``, python-engineio's own stop sentinel,
  on a WebSocket's queue: the writer sends what is queued (the CLOSE packet last) and closes
  the WebSocket at once, instead of idling ``pingInterval + pingTimeout`` first.

``tests/test_fences_socketio_attachments.py`` fails if python-socketio or python-engineio stop
working this way. Upstream, the smallest change would be a ``max_attachments`` option and a
bound in bytes on ``_binary_packet`` in python-socketio, as socket.io-parser has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import socketio
from socketio import packet as sio_packet

from gateway.fences.engineio_server import open_socket

_BINARY = (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK)


class AttachmentsRefused(ValueError):
    """A binary packet over the bounds: ``namespace`` is the one its header named."""

    def __init__(self, namespace: str | None, message: str) -> None:
        super().__init__(message)
        self.namespace = namespace or "/"


class _BoundedPacket(sio_packet.Packet):  # type: ignore[misc]  # python-socketio ships no types
    max_attachments: ClassVar[int]
    max_held: ClassVar[int]

    def decode(self, encoded_packet: Any) -> int:
        count: int = super().decode(encoded_packet)
        if self.packet_type in _BINARY and not 1 <= count <= self.max_attachments:
            raise AttachmentsRefused(
                self.namespace, f"a binary packet announcing {count} attachments (1 to {self.max_attachments})"
            )
        return count

    def add_attachment(self, attachment: Any) -> bool:
        if not isinstance(attachment, bytes):
            raise AttachmentsRefused(self.namespace, "a text message where a binary attachment belongs")
        if len(self.attachments) + 1 < self.attachment_count:  # not the last: held until it comes
            held = len(attachment) + sum(len(a) for a in self.attachments)
            if held > self.max_held:
                raise AttachmentsRefused(self.namespace, f"binary attachments held over {self.max_held} bytes")
        done: bool = super().add_attachment(attachment)
        return done


def bounded_packets(max_attachments: int, max_held: int) -> type[Any]:
    """python-socketio's ``Packet`` for ``AsyncServer(serializer=...)``, refusing a binary packet
    that announces no attachment or more than ``max_attachments``, a text message in place of an
    attachment, or attachments held (all but the last) over ``max_held`` bytes."""
    return type("BoundedPacket", (_BoundedPacket,), {"max_attachments": max_attachments, "max_held": max_held})


Refused = Callable[[str, str | None, AttachmentsRefused], Awaitable[None]]


def guard_attachments(server: socketio.AsyncServer, refused: Refused) -> None:
    """Have ``server`` (built with ``serializer=bounded_packets(...)``) let go of a refused
    packet's attachments and await ``refused(eio_sid, sio_sid, error)``: the Engine.IO socket,
    its Socket.IO sid in ``error.namespace`` (None if not connected there) and the refusal.
    Nothing of a refused packet is dispatched."""
    if not issubclass(server.packet_class, _BoundedPacket):
        raise TypeError("build the server with serializer=bounded_packets(...)")
    handle = server._handle_eio_message

    async def message(eio_sid: str, data: Any) -> None:
        try:
            await handle(eio_sid, data)
        except AttachmentsRefused as error:
            server._binary_packet.pop(eio_sid, None)  # its attachments are let go now
            sio_sid: str | None = server.manager.sid_from_eio_sid(eio_sid, error.namespace)
            await refused(eio_sid, sio_sid, error)

    server.eio.on("message", message)


def held_attachment_bytes(server: socketio.AsyncServer) -> int:
    """Bytes of binary attachments ``server`` holds for packets not complete yet, all sockets
    together (what the tests read; a ``gateway_held_bytes`` store could)."""
    return sum(len(a) for pending in list(server._binary_packet.values()) for a in pending.attachments)


async def end_socket(server: socketio.AsyncServer, eio_sid: str) -> None:
    """Close Engine.IO socket ``eio_sid`` now: python-socketio's disconnect runs for each of its
    namespaces, what it has queued is still sent (the CLOSE packet last), and a WebSocket is then
    closed at once. Nothing if it is closed or gone."""
    socket: Any = open_socket(server, eio_sid)
    if socket is None:
        return
    await socket.close(wait=False)
    if socket.upgraded:
        socket.queue.put_nowait(None)
