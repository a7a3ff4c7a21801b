"""Events for a namespace a connection is not connected to: answered, not dropped.

python-socketio (5.x) ``AsyncServer._handle_event(eio_sid, namespace, id, data)`` drops an
EVENT (or a BINARY_EVENT, once whole) whose Engine.IO connection has no connection to
``namespace`` with a log line, and sends the client nothing: its ack never comes. That
happens to a packet in flight when the server disconnects the namespace a moment before
(the gateway's ``close {replaced}`` when a session moves to another connection), or to a
client that never connected. ``answer_unconnected`` wraps that one method of one server
instance: such an event is handed to ``refuse(eio_sid, namespace)``, and when the client
asked for an ack it gets ``refuse``'s answer as one; every other event goes on as before.

``tests/test_fences_socketio_unconnected.py`` fails if python-socketio stops routing
events through ``_handle_event`` or answering acks through ``_send_packet``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import socketio
from socketio import packet as sio_packet


def answer_unconnected(server: socketio.AsyncServer, refuse: Callable[[str, str], Any]) -> None:
    """Answer the events of ``server`` for namespaces their connection is not connected to
    with ``refuse(eio_sid, namespace)`` (sent as the ack, if one was asked for)."""
    handle = server._handle_event

    async def handle_event(eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        name = namespace or "/"
        if server.manager.is_connected(server.manager.sid_from_eio_sid(eio_sid, name), name):
            await handle(eio_sid, namespace, id, data)
            return
        answer = refuse(eio_sid, name)
        if id is not None:
            await server._send_packet(eio_sid, server.packet_class(sio_packet.ACK, namespace=name, data=[answer], id=id))

    server._handle_event = handle_event
