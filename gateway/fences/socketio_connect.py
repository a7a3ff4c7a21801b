"""What the CONNECT answer of a Socket.IO namespace carries: borrowed from python-socketio.

Socket.IO's connection-state recovery needs the server's CONNECT answer to carry
``{"sid", "pid"}``; the gateway also makes ``sid`` its public session id, so that the
official client's ``socket.id`` is the ``sender`` other members see. python-socketio
(5.x) has no way to say either: ``AsyncServer._handle_connect`` runs the namespace's
connect handler and then, if it did not refuse, sends
``packet_class(CONNECT, {"sid": <its own sid>}, namespace=...)`` through
``AsyncServer._send_packet(eio_sid, packet)`` (with ``always_connect`` off, the default
and the gateway's setting). ``ConnectAnswers`` wraps that one method of one server
instance: a CONNECT packet for an (Engine.IO sid, namespace) that the handler left an
answer for goes out with that answer as its data; every other packet is untouched.
python-socketio keeps using its own sid for the connection inside.

``tests/test_fences_socketio_connect.py`` fails if python-socketio stops sending the
CONNECT answer this way. Upstream, the smallest change would be to let the connect
handler return the CONNECT payload (e.g. a dict, merged into ``{"sid": sid}``), or a
``connect_payload`` hook; choosing the namespace sid would then be a matter of the
manager's ``pre_connect`` taking it. python-socketio issue #1258 asks for recovery itself.
"""

from __future__ import annotations

from typing import Any

import socketio
from socketio import packet as sio_packet


class ConnectAnswers:
    """The CONNECT answers waiting to be sent by one python-socketio server."""

    def __init__(self, server: socketio.AsyncServer) -> None:
        self._waiting: dict[tuple[str, str], dict[str, Any]] = {}
        send = server._send_packet

        async def send_packet(eio_sid: str, pkt: Any) -> None:
            if pkt.packet_type == sio_packet.CONNECT:
                answer = self._waiting.pop((eio_sid, pkt.namespace or "/"), None)
                if answer is not None:
                    pkt.data = answer
            await send(eio_sid, pkt)

        server._send_packet = send_packet

    def give(self, eio_sid: str, namespace: str, answer: dict[str, Any]) -> None:
        """Answer the CONNECT of ``namespace`` on Engine.IO socket ``eio_sid`` with ``answer``:
        call from the connect handler, which python-socketio answers as soon as it returns."""
        self._waiting[(eio_sid, namespace)] = answer
