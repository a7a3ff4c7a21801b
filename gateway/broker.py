"""The broker: where room events are logged and from where they fan out.

The in-memory broker (``broker_memory``) serves one process; the Redis broker
(``broker_redis``) lets several nodes share rooms, logs, dedup entries and
session records. The hub only ever talks to this interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .delivery_log import Replay
from .envelope import Envelope
from .sessions import SessionRecord


@dataclass(frozen=True, slots=True)
class Publication:
    """A logged room event on its way to every node's subscribers."""

    envelope: Envelope
    include_sender: bool = False


OnPublication = Callable[[Publication], None]


class Broker(Protocol):
    async def start(self, on_publication: OnPublication) -> None:
        """Begin delivering every node's publications to ``on_publication``."""

    async def close(self) -> None: ...

    @property
    def ready(self) -> bool:
        """False while the broker cannot log or fan out (``/readyz`` reports it)."""

    async def publish(self, draft: Envelope, include_sender: bool) -> Envelope:
        """Assign the next offset, log the event, fan it out; returns it logged.

        Returns only once the event is in the log, so an ack may follow.
        """

    async def position(self, namespace: str, room: str) -> str:
        """The room's current last offset (where a new member starts)."""

    async def replay(self, namespace: str, room: str, after: str) -> Replay:
        """Logged events after ``after``; raises ``OffsetFromFuture``."""

    async def dedup_get(self, key: str) -> Any | None: ...

    async def dedup_put(self, key: str, result: Any, ttl: float) -> None: ...

    async def save_session(self, record: SessionRecord, ttl: float) -> None: ...

    async def load_session(self, sid: str) -> SessionRecord | None: ...

    async def drop_session(self, sid: str, *, expired: bool, ttl: float) -> None:
        """Forget a session; an expired one leaves a tombstone for ``ttl`` seconds."""

    async def session_expired(self, sid: str) -> bool:
        """True if ``sid`` existed and expired (as opposed to never existing)."""
