"""Engine.IO's per-socket queue, counting the bytes it holds.

python-engineio gives each socket an unbounded ``asyncio.Queue`` of packets
(``AsyncServer.create_queue``, called once per socket); its writer task empties it
into the WebSocket or the next poll. ``ByteQueue`` is that queue plus a running count
of the packets' data, kept as items go in and out (``fences.engineio_server.ObservedQueue``),
so the room fan-out can cut a socket that is too far behind in bytes with one
attribute read (``socketio_server.SocketIOTransport._room_emit``).

A packet weighs its data's length: characters for text (the Socket.IO packet as
encoded), bytes for binary; ``None`` (the writer's stop sentinel) and empty
packets weigh nothing. If python-engineio stopped calling ``create_queue``,
``held`` would stay 0 and only the frame-count bound would cut:
``tests/test_memory_bounds.py`` and ``tests/test_fences_engineio.py`` pin it.
"""

from __future__ import annotations

from typing import Any

from gateway.fences.engineio_server import ObservedQueue


def _weight(item: Any) -> int:
    data = getattr(item, "data", None)
    return len(data) if isinstance(data, (str, bytes)) else 0


class ByteQueue(ObservedQueue):
    """An unbounded queue whose ``held`` is the size of the packets it holds."""

    held: int = 0  # bytes of the packets queued

    def added(self, item: Any) -> None:
        self.held += _weight(item)

    def removed(self, item: Any) -> None:
        self.held -= _weight(item)
