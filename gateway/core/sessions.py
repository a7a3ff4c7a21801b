"""Sessions: what a connected client is, and the record another node can read.

A session has two names. ``sid`` is public: it is the ``sender`` of its events and
the name of its personal room, so every member of a room sees it, and it grants
nothing. ``key`` is private: only the session's own connection receives it (in
``open``), and every request, resume or close must present it. Nodes keep the
key's SHA-256, never the key, in the shared session record.

The public id is derived from the key (``public_id``, a one-way hash), so the key
alone names its session: Socket.IO's connection-state recovery sends back nothing
but its ``pid`` (the key) and the last offset it received.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from collections import deque
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


def new_key() -> str:
    """A session's private key: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


def public_id(key: str) -> str:
    """The public id (sid) of the session whose private key is ``key``: 128 bits of a
    SHA-256 apart from ``hash_key``'s, URL-safe (22 characters). Knowing it gives nothing
    towards the key; knowing the key gives the session."""
    digest = hashlib.sha256(b"rtgateway public id\0" + key.encode("utf-8", "surrogateescape")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


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
    # The connection a resume is moving the session to while it reads the log (the session is
    # still on its previous one then): the backlog is that connection's.
    taking_over: Channel | None = None
    # Its publishes and emits per second (``limits.Limits.request``), made on first use.
    bucket: TokenBucket | None = None
    # What its current connection was handed, for Socket.IO recovery (None where that is off).
    trail: Trail | None = None

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


class Trail:
    """The room events a session's connection was handed, in order: Socket.IO recovery's record.

    A Socket.IO client that recovers sends back only the trailing string of the last
    event it received (``"<room>=<offset>"``, the same for every member of a broadcast,
    so a broadcast is still encoded once). One connection delivers in the order it was
    written to, so everything written before that event was received and nothing after
    it: the client resumes that room after that offset, and every other room after the
    last offset written in it before that event, or where the connection started
    (``base``). Entries are ``(room, offset)``; a string that ended another event (a
    server call's data) is kept as ``(None, string)``, since the client keeps that too.

    Bounded to ``limit`` entries: the oldest are folded into ``base``. A last string that
    names a dropped entry, or more than one entry, cannot be placed exactly: ``None``.
    """

    __slots__ = ("base", "entries", "limit", "trimmed")

    def __init__(self, base: dict[str, str], limit: int) -> None:
        self.base = dict(base)
        self.entries: deque[tuple[str | None, str]] = deque()
        self.limit = limit
        self.trimmed = False

    def add(self, entry: tuple[str | None, str]) -> None:
        """The connection was just handed an event: ``(room, offset)``, or ``(None, string)``
        for another event whose last argument is that string. A broadcast adds the same
        tuple to every member's trail: an entry costs each trail one pointer."""
        entries = self.entries
        if len(entries) >= self.limit:
            old_room, old_mark = entries.popleft()
            if old_room is not None:
                self.base[old_room] = old_mark
            self.trimmed = True
        entries.append(entry)

    def positions(self, last: str | None) -> dict[str, str] | None:
        """Where each room resumes for a client whose last received string is ``last``
        (None: it received none); None if that cannot be known exactly."""
        found = [
            i for i, (room, mark) in enumerate(self.entries)
            if last == (mark if room is None else position_mark(room, mark))
        ]
        if len(found) > 1 or (not found and self.trimmed):
            return None
        positions = dict(self.base)
        # Not found: it received nothing this connection wrote (else it would hold that
        # string, or a later one); what it holds is from an earlier connection or session.
        for room, mark in list(self.entries)[: found[0] + 1] if found else ():
            if room is not None:
                positions[room] = mark
        return positions


def position_mark(room: str, offset: str) -> str:
    """The trailing string of a room event on a Socket.IO namespace with recovery on."""
    return f"{room}={offset}"
