"""What the hub needs from a transport: room fan-out and live-membership hooks.

A transport is one module that translates its wire protocol into hub calls and
implements this. Per-connection writing goes through ``sessions.Channel``.
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
        """Deliver ``envelope`` to this transport's live ``members`` of ``room``, except ``skip``."""

    def attach(self, session: Session, room: str) -> None:
        """``session`` now receives ``room``'s live events."""

    def detach(self, session: Session, room: str) -> None:
        """``session`` no longer receives ``room``'s live events."""
