"""Sessions: what a connected client is, and the record another node can read.

A session has two names. ``sid`` is public: it is the ``sender`` of its events and
the name of its personal room, so every member of a room sees it, and it grants
nothing. ``key`` is private: only the session's own connection receives it (in
``open``), and every request, resume or close must present it. Nodes keep the
key's SHA-256, never the key, in the shared session record.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.core.limits import TokenBucket
from gateway.wire.envelope import Envelope


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


def new_key() -> str:
    """A session's private key: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


def hash_key(key: str) -> str:
    """What nodes store and compare: the key's SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def key_matches(presented: str | None, key_hash: str) -> bool:
    """Constant-time check of a presented key against a stored hash (bytes, not str:
    ``hmac.compare_digest`` refuses non-ASCII ``str``, and a key is attacker input)."""
    if not presented or not key_hash:
        return False
    return hmac.compare_digest(hash_key(presented).encode(), key_hash.encode())


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """The part of a session that survives its connection (and its node)."""

    sid: str
    namespace: str
    user: str | None
    rooms: dict[str, str]  # room -> offset when joined
    node: str = ""  # the node holding the connection (or that last did)
    key_hash: str = ""  # SHA-256 of the private key: enough to check it, useless to present


@dataclass(eq=False, slots=True)
class Session:
    sid: str
    namespace: str
    # The private key (only on the node whose connection received or presented it) and its hash.
    key: str = ""
    key_hash: str = ""
    user: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    # When the credential the session connected with stops being valid (epoch seconds), if ever.
    expires_at: float | None = None
    rooms: dict[str, str] = field(default_factory=dict)
    # Last offset handed to the channel per room (what SSE puts in ``id:``).
    positions: dict[str, str] = field(default_factory=dict)
    transport: str = ""
    channel: Channel | None = None
    state: SessionState = SessionState.CONNECTED
    detached_at: float = 0.0
    expiry: Any = None  # the timer that ends the connection when ``expires_at`` passes
    # While replaying on resume, live events wait here instead of going out.
    backlog: list[Envelope] | None = None
    # Its publishes and emits per second (``limits.Limits.request``), made on first use.
    bucket: TokenBucket | None = None

    @property
    def live(self) -> bool:
        return self.state is SessionState.CONNECTED and self.backlog is None

    def record(self, node: str) -> SessionRecord:
        return SessionRecord(self.sid, self.namespace, self.user, dict(self.rooms), node, self.key_hash)

    @classmethod
    def from_record(cls, rec: SessionRecord) -> Session:
        return cls(
            sid=rec.sid,
            namespace=rec.namespace,
            key_hash=rec.key_hash,
            user=rec.user,
            rooms=dict(rec.rooms),
            positions=dict(rec.rooms),
            state=SessionState.DETACHED,
        )
