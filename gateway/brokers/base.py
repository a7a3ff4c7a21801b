"""The broker: where room events are logged and from where they fan out.

The in-memory broker (``broker_memory``) serves one process; the Redis broker
(``broker_redis``) lets several nodes share rooms, logs, dedup entries and
session records. The hub only ever talks to this interface.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.core.delivery_log import Replay
from gateway.core.presence import Beat, Member, Page, PresenceKey
from gateway.core.sessions import SessionRecord
from gateway.wire.envelope import Envelope


@dataclass(frozen=True, slots=True)
class Publication:
    """A logged room event on its way to every node's subscribers."""

    envelope: Envelope
    include_sender: bool = False


@dataclass(frozen=True, slots=True)
class Dedup:
    """Store the publish ack under ``key`` in the same step that logs the event."""

    key: str
    ttl: float


@dataclass(frozen=True, slots=True)
class Command:
    """A client request for a session held by another node (SSE + POST without stickiness)."""

    op: str
    sid: str
    body: dict[str, Any]


OnPublication = Callable[[Publication], None]
OnCommand = Callable[[Command], Awaitable[Any]]
OnGap = Callable[[], None]


class Broker(Protocol):
    node: str
    """This node's id: session records say which node holds a session."""

    async def start(self, on_publication: OnPublication, on_command: OnCommand, on_gap: OnGap) -> None:
        """Begin delivering every node's publications to ``on_publication`` and the
        commands routed to this node to ``on_command``; ``on_gap`` is called when
        fan-out to this node was interrupted (its live sessions may have missed events)."""

    async def close(self) -> None: ...

    @property
    def ready(self) -> bool:
        """False while the broker cannot log or fan out (``/readyz`` reports it)."""

    async def publish(self, draft: Envelope, include_sender: bool, dedup: Dedup | None = None) -> Envelope:
        """Assign the next offset, log the event, fan it out; returns it logged.

        Returns only once the event is in the log, so an ack may follow. With
        ``dedup``, the ack ``{"result": {"room", "offset"}}`` is stored atomically with
        the log entry: a retransmission can never log the event twice.
        """

    async def publish_volatile(self, draft: Envelope, include_sender: bool) -> Envelope:
        """Fan a volatile event out to every node without logging it: no offset (``""``), the
        broker's time as ``ts``; returns it as fanned out."""

    async def presence_write(self, changes: Mapping[PresenceKey, Member | None]) -> None:
        """Record this node's presence changes: a member entered (its ``Member``) or left (None).
        A removal takes out only an entry this node wrote (the session may have moved on)."""

    async def presence_page(self, namespace: str, room: str, after: str | None, limit: int) -> Page:
        """Up to ``limit`` members of ``room`` with a sid after ``after`` (None: from the first),
        in sid order, on live nodes only; ``next`` is the cursor of the rest (None: no more)."""

    async def presence_beat(self) -> Beat:
        """Keep this node alive in presence, and take out the members of nodes that are not."""

    async def route(self, node: str, command: Command, timeout: float) -> Any:
        """Run ``command`` on ``node`` and return its result (or raise its error)."""

    async def position(self, namespace: str, room: str) -> str:
        """The room's current last offset (where a new member starts)."""

    async def replay(self, namespace: str, room: str, after: str) -> Replay:
        """Logged events after ``after``; raises ``OffsetFromFuture``."""

    async def sweep(self) -> None:
        """Housekeeping the hub's sweeper runs every second or so: trim idle logs, drop
        empty ones, expire dedup entries (a broker whose store expires keys itself: nothing)."""

    def held_bytes(self) -> dict[str, int]:
        """Bytes this node holds for the broker, by kind (``logs``, ``dedup``); {} when they live elsewhere."""

    async def dedup_get(self, key: str) -> Any | None: ...

    async def dedup_put(self, key: str, result: Any, ttl: float) -> None:
        """Keep ``result`` (an ack) for ``ttl`` seconds; one over ``dedup_entry_max_bytes`` is not kept."""

    async def save_session(self, record: SessionRecord, ttl: float, *, take: bool = False) -> None:
        """Write ``record`` for ``ttl`` seconds, only while no record names another node than
        ``record.node`` (a node that lost the session to another cannot write it back), unless
        ``take``: this node is taking the session over."""

    async def load_session(self, sid: str) -> SessionRecord | None: ...

    async def drop_session(self, sid: str, *, expired: bool, ttl: float, key_hash: str = "") -> None:
        """Forget a session; an expired one leaves a tombstone (its key hash) for ``ttl`` seconds."""

    async def expired_session(self, sid: str) -> str | None:
        """The key hash of ``sid`` if it existed and expired; None if it never existed (or is live)."""

    async def put_snapshot(self, snapshot: bytes, ttl: float) -> None:
        """Keep this node's operator-view snapshot (``gateway/overview.py``) for ``ttl``
        seconds, in place of its previous one."""

    async def snapshots(self) -> list[bytes]:
        """Every node's snapshot that has not expired, this node's included."""
