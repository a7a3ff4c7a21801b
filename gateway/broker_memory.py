"""The default broker: one process, everything in memory."""

from __future__ import annotations

import secrets
import time
from typing import Any

from .broker import Command, Dedup, OnCommand, OnGap, OnPublication, Publication
from .delivery_log import Replay, RoomLog
from .envelope import Envelope
from .errors import UnknownSession
from .sessions import SessionRecord
from .settings import Settings


def _now_ms() -> int:
    return int(time.time() * 1000)


class MemoryBroker:
    """Logs and fan-out for a single gateway process.

    Offsets start from this process's boot time, so a client resuming with an
    offset from a previous process is told it has a gap, never silently nothing.
    """

    def __init__(self, settings: Settings) -> None:
        self.node = secrets.token_hex(6)
        self._settings = settings
        self._epoch = _now_ms()
        self._logs: dict[tuple[str, str], RoomLog] = {}
        self._dedup: dict[str, tuple[float, Any]] = {}
        self._sessions: dict[str, SessionRecord] = {}
        self._tombstones: dict[str, tuple[float, str]] = {}  # sid -> (until, key hash)
        self._on_publication: OnPublication | None = None
        self._writes = 0

    async def start(self, on_publication: OnPublication, on_command: OnCommand, on_gap: OnGap) -> None:
        self._on_publication = on_publication

    async def close(self) -> None:
        self._on_publication = None

    @property
    def ready(self) -> bool:
        return self._on_publication is not None

    def _log(self, namespace: str, room: str) -> RoomLog:
        log = self._logs.get((namespace, room))
        if log is None:
            log = self._logs[(namespace, room)] = self._empty_log()
        return log

    def _empty_log(self) -> RoomLog:
        return RoomLog(self._epoch, self._settings.log_max_length, self._settings.log_max_age)

    async def publish(self, draft: Envelope, include_sender: bool, dedup: Dedup | None = None) -> Envelope:
        log = self._log(draft.namespace, draft.room)
        envelope = Envelope(
            draft.namespace, draft.room, draft.event, draft.data, log.next_offset(),
            draft.sender, draft.client_event_id, _now_ms(), draft.echo,
        )
        log.append(envelope, envelope.ts)
        if dedup is not None:
            await self.dedup_put(dedup.key, {"result": {"room": draft.room, "offset": envelope.offset}}, dedup.ttl)
        if self._on_publication is not None:
            self._on_publication(Publication(envelope, include_sender))
        return envelope

    async def route(self, node: str, command: Command, timeout: float) -> Any:
        raise UnknownSession(f"no session {command.sid!r} on this node", sid=command.sid)

    async def position(self, namespace: str, room: str) -> str:
        log = self._logs.get((namespace, room))
        return log.last_offset if log is not None else f"{self._epoch}-0"

    async def replay(self, namespace: str, room: str, after: str) -> Replay:
        # A room nobody published to has no log yet (every session's personal room,
        # mostly): asking about it must not cost each session a log.
        log = self._logs.get((namespace, room))
        if log is None:
            log = self._empty_log()
        log.trim(_now_ms())
        return log.since(after)

    async def dedup_get(self, key: str) -> Any | None:
        hit = self._dedup.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._dedup[key]
            return None
        return hit[1]

    async def dedup_put(self, key: str, result: Any, ttl: float) -> None:
        self._dedup[key] = (time.monotonic() + ttl, result)
        self._sweep()

    async def save_session(self, record: SessionRecord, ttl: float) -> None:
        self._sessions[record.sid] = record

    async def load_session(self, sid: str) -> SessionRecord | None:
        return self._sessions.get(sid)

    async def drop_session(self, sid: str, *, expired: bool, ttl: float, key_hash: str = "") -> None:
        record = self._sessions.pop(sid, None)
        if record is not None:
            # Its personal room dies with it; without this every connection ever made
            # would leave a log behind.
            self._logs.pop((record.namespace, sid), None)
        if expired:
            self._tombstones[sid] = (time.monotonic() + ttl, key_hash)
            self._sweep()

    def _sweep(self) -> None:
        # Amortised: every 1024 writes drop what has outlived its TTL, so both maps
        # stay bounded by the write rate times their window.
        self._writes += 1
        if self._writes % 1024:
            return
        now = time.monotonic()
        self._dedup = {k: v for k, v in self._dedup.items() if v[0] >= now}
        self._tombstones = {k: v for k, v in self._tombstones.items() if v[0] >= now}

    async def expired_session(self, sid: str) -> str | None:
        tombstone = self._tombstones.get(sid)
        return tombstone[1] if tombstone is not None and tombstone[0] >= time.monotonic() else None
