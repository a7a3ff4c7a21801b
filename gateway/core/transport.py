"""What the hub needs from a transport: room fan-out to the members the hub holds.

A transport is one module that translates its wire protocol into hub calls and
implements this. Room membership lives in the hub only (``core/rooms.py``): ``broadcast``
is given the room's live members. Per-connection writing goes through ``sessions.Channel``.
"""

from __future__ import annotations

from typing import Protocol

from gateway.core.rooms import Room
from gateway.core.sessions import Session
from gateway.wire.envelope import Envelope


class Transport(Protocol):
    name: str

    def broadcast(
        self, room: Room, members: dict[str, Session], envelope: Envelope, wire: bytes, skip: str | None
    ) -> None:
        """Deliver ``envelope`` to this transport's live ``members`` of ``room``, except ``skip``.

        A volatile one (``envelope.volatile``: no offset) moves no session's position or cursor,
        goes only to connections ready for it (nothing much waiting, the socket taking writes)
        and is dropped for the others, counted in ``dropped{reason="volatile_not_ready"}``; it
        never cuts a connection (docs/protocol.md, "Volatile events")."""
