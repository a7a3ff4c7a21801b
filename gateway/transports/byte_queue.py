"""Engine.IO's per-socket queue, counting the bytes it holds.

python-engineio gives each socket an unbounded ``asyncio.Queue`` of packets
(``AsyncServer.create_queue``, its documented factory, called once per socket); its
writer task empties it into the WebSocket or the next poll. ``ByteQueue`` is that
queue plus a running count of the packets' data, kept in ``asyncio.Queue``'s own
subclass hooks (``_put``/``_get``, which ``PriorityQueue`` and ``LifoQueue``
override too), so the room fan-out can cut a socket that is too far behind in bytes
with one attribute read (``socketio_server._room_emit``).

A packet weighs its data's length: characters for text (the Socket.IO packet as
encoded), bytes for binary; ``None`` (the writer's stop sentinel) and empty
packets weigh nothing. If python-engineio stopped calling ``create_queue`` or
these hooks, ``held`` would stay 0 and only the frame-count bound would cut:
``tests/test_memory_bounds.py`` pins it.
"""

from __future__ import annotations

import asyncio
from typing import Any


def _weight(item: Any) -> int:
    data = getattr(item, "data", None)
    return len(data) if isinstance(data, (str, bytes)) else 0


class ByteQueue(asyncio.Queue[Any]):
    """An unbounded ``asyncio.Queue`` whose ``held`` is the size of the packets it holds."""

    held: int = 0  # bytes of the packets queued

    def _put(self, item: Any) -> None:
        self.held += _weight(item)
        super()._put(item)  # type: ignore[misc]

    def _get(self) -> Any:
        item = super()._get()  # type: ignore[misc]
        self.held -= _weight(item)
        return item
