"""Sessions: what a connected client is, and the record another node can read."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from .envelope import Envelope


class SessionState(enum.Enum):
    CONNECTED = "connected"
    DETACHED = "detached"  # connection gone, sid and rooms kept for the recovery window
    CLOSED = "closed"


class Channel(Protocol):
    """The write side of one client connection; the transport owns reading.

    Every method is non-blocking: a channel queues what it cannot write at once
    and cuts the connection itself when its bounded queue overflows.
    """

    transport: str

    def deliver(self, session: Session, envelope: Envelope, wire: bytes) -> None:
        """Send one room event (``wire`` is the envelope, encoded once per broadcast)."""

    def replay(self, session: Session, envelopes: list[Envelope]) -> None:
        """Send a resumed session's missed room events, in order, as one batch."""

    def send(self, event: str, data: Any) -> None:
        """Send a gateway frame (``open``, ``recovery``, ``joined``, ...)."""

    def call(self, ack_id: str, event: str, data: Any) -> None:
        """Send a server->client call the client must acknowledge with ``ack_id``."""

    def close(self, reason: str) -> None:
        """Close the connection; the session stays recoverable unless it was closed."""


def new_sid() -> str:
    """128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """The part of a session that survives its connection (and its node)."""

    sid: str
    namespace: str
    user: str | None
    rooms: dict[str, str]  # room -> offset when joined
    node: str = ""  # the node holding the connection (or that last did)


@dataclass(eq=False, slots=True)
class Session:
    sid: str
    namespace: str
    user: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    rooms: dict[str, str] = field(default_factory=dict)
    # Last offset handed to the channel per room (what SSE puts in ``id:``).
    positions: dict[str, str] = field(default_factory=dict)
    transport: str = ""
    channel: Channel | None = None
    state: SessionState = SessionState.CONNECTED
    detached_at: float = 0.0
    # While replaying on resume, live events wait here instead of going out.
    backlog: list[Envelope] | None = None

    @property
    def live(self) -> bool:
        return self.state is SessionState.CONNECTED and self.backlog is None

    def record(self, node: str) -> SessionRecord:
        return SessionRecord(self.sid, self.namespace, self.user, dict(self.rooms), node)

    @classmethod
    def from_record(cls, rec: SessionRecord) -> Session:
        return cls(
            sid=rec.sid,
            namespace=rec.namespace,
            user=rec.user,
            rooms=dict(rec.rooms),
            positions=dict(rec.rooms),
            state=SessionState.DETACHED,
        )
