"""The default broker: one process, everything in memory, bounded in bytes.

Room logs are bounded per room (``log_max_length``, ``log_max_age``,
``log_max_bytes``) and together (``logs_max_bytes``: past it the oldest entries
of the whole node go first). ``sweep`` (the hub's sweeper calls it) trims idle
logs by age and drops the empty ones; what a dropped log had issued is kept as
its last offset only, until no session can need it. Dedup entries keep the
encoded ack within ``dedup_max_bytes``, oldest first out.
"""

from __future__ import annotations

import heapq
import secrets
import time
from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson

from gateway.brokers.base import Command, Dedup, OnCommand, OnGap, OnPublication, Publication
from gateway.core.delivery_log import Offset, Replay, RoomLog, replay_without_log
from gateway.core.presence import Beat, Member, Page, PresenceKey
from gateway.core.sessions import SessionRecord
from gateway.settings import Settings
from gateway.wire import binary
from gateway.wire.envelope import Envelope
from gateway.wire.errors import UnknownSession

# What a dedup entry costs besides its key and encoded ack: the dict slot, the tuple,
# the bytes object's header (measured with tracemalloc: ~180 bytes on CPython 3.11).
DEDUP_OVERHEAD = 180


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
        self.log_bytes = 0  # every log's entries, encoded
        self._appends = 0  # entries ever logged: their order across rooms, oldest first
        # Dropped logs: room -> (last offset, until when a session may still need it, ms).
        self._ended: dict[tuple[str, str], tuple[Offset, int]] = {}
        self._next_sweep = 0.0
        self._dedup: OrderedDict[str, tuple[float, bytes, int]] = OrderedDict()  # key -> (until, ack, cost)
        self.dedup_bytes = 0
        self._sessions: dict[str, SessionRecord] = {}
        self._tombstones: dict[str, tuple[float, str]] = {}  # sid -> (until, key hash)
        self._on_publication: OnPublication | None = None
        self._writes = 0
        # (namespace, room) -> (sid -> member, the sids in order): presence, paged by sid
        self._presence: dict[tuple[str, str], tuple[dict[str, Member], list[str]]] = {}
        self._snapshot: tuple[float, bytes] = (0.0, b"")  # (until, the operator view's snapshot)

    async def start(self, on_publication: OnPublication, on_command: OnCommand, on_gap: OnGap) -> None:
        self._on_publication = on_publication

    async def close(self) -> None:
        self._on_publication = None

    @property
    def ready(self) -> bool:
        return self._on_publication is not None

    def held_bytes(self) -> dict[str, int]:
        """What this node holds, for the ``gateway_held_bytes`` gauge."""
        return {"logs": self.log_bytes, "dedup": self.dedup_bytes}

    # -- room logs ---------------------------------------------------------------

    def _log(self, namespace: str, room: str) -> RoomLog:
        log = self._logs.get((namespace, room))
        if log is None:
            s = self._settings
            ended = self._ended.pop((namespace, room), None)
            if ended is not None:  # carry on from the dropped log: offsets keep increasing
                (epoch, seq), _ = ended
                log = RoomLog(epoch, s.log_max_length, s.log_max_age, s.log_max_bytes, seq=seq, trimmed=(epoch, seq))
            else:
                # A new epoch: above every offset an earlier, forgotten log of this room issued
                # (it ended longer ago than a session lives), still judged from the boot epoch.
                epoch = max(_now_ms(), self._epoch)
                log = RoomLog(epoch, s.log_max_length, s.log_max_age, s.log_max_bytes, trimmed=(self._epoch, 0))
            self._logs[(namespace, room)] = log
        return log

    async def publish(self, draft: Envelope, include_sender: bool, dedup: Dedup | None = None) -> Envelope:
        log = self._log(draft.namespace, draft.room)
        envelope = Envelope(
            draft.namespace, draft.room, draft.event, draft.data, log.next_offset(),
            draft.sender, draft.client_event_id, _now_ms(), draft.echo,
        )
        # Weighed as delivered: one encode (~1 µs for a chat message), and the size the
        # bounds are documented in.
        before = log.bytes
        self._appends += 1
        log.append(envelope, envelope.ts, len(envelope.encode()), self._appends)
        self.log_bytes += log.bytes - before
        if self.log_bytes > self._settings.logs_max_bytes:
            self._over_budget()
        if dedup is not None:
            await self.dedup_put(dedup.key, {"result": {"room": draft.room, "offset": envelope.offset}}, dedup.ttl)
        if self._on_publication is not None:
            self._on_publication(Publication(envelope, include_sender))
        return envelope

    async def publish_volatile(self, draft: Envelope, include_sender: bool) -> Envelope:
        envelope = replace(draft, offset="", ts=_now_ms(), volatile=True)
        if self._on_publication is not None:
            self._on_publication(Publication(envelope, include_sender))
        return envelope

    def _over_budget(self) -> None:
        """Drop the node's oldest entries, whichever rooms hold them, to 7/8 of the budget.

        The margin makes it rare: the scan over every log (a heap of their oldest
        entries) is paid once per eighth of the budget, not per publish.
        """
        budget = self._settings.logs_max_bytes
        target = budget - budget // 8
        heap = [(log.oldest, log) for log in self._logs.values() if len(log)]
        heapq.heapify(heap)
        while heap and self.log_bytes > target:
            log = heap[0][1]
            self.log_bytes -= log.evict_oldest()
            if len(log):
                heapq.heapreplace(heap, (log.oldest, log))
            else:
                heapq.heappop(heap)

    async def route(self, node: str, command: Command, timeout: float) -> Any:
        raise UnknownSession(f"no session {command.sid!r} on this node", sid=command.sid)

    async def position(self, namespace: str, room: str) -> str:
        log = self._logs.get((namespace, room))
        if log is not None:
            return log.last_offset
        ended = self._ended.get((namespace, room))
        return f"{ended[0][0]}-{ended[0][1]}" if ended is not None else f"{self._epoch}-0"

    async def replay(self, namespace: str, room: str, after: str) -> Replay:
        # A room nobody published to has no log yet (every session's personal room,
        # mostly): asking about it must not cost each session a log.
        log = self._logs.get((namespace, room))
        now_ms = _now_ms()
        if log is None:
            ended = self._ended.get((namespace, room))
            return replay_without_log(after, ended[0] if ended is not None else None, (self._epoch, 0), now_ms)
        before = log.bytes
        log.trim(now_ms)
        self.log_bytes += log.bytes - before
        return log.since(after)

    async def sweep(self) -> None:
        """Trim idle logs by age and drop the empty ones (the hub's sweeper calls this every second or so).

        A dropped log leaves its last offset behind for a session's lifetime after its
        last event (``ping_timeout + recovery_window``): a resume from before it is
        still told of the gap, and the room's next log carries on its offsets.
        """
        s = self._settings
        now = time.monotonic()
        if now < self._next_sweep:
            return
        # O(rooms) per pass: at most every 5 s, and often enough for short test ages.
        self._next_sweep = now + min(5.0, s.log_max_age / 4)
        now_ms = _now_ms()
        session_ms = int((s.ping_timeout + s.recovery_window) * 1000)
        for key, log in list(self._logs.items()):
            before = log.bytes
            log.trim(now_ms)
            self.log_bytes += log.bytes - before
            if not len(log):
                del self._logs[key]
                until = log.appended_ms + session_ms
                if until > now_ms:
                    self._ended[key] = (log.last, until)
        if self._ended:
            self._ended = {key: ended for key, ended in self._ended.items() if ended[1] > now_ms}
        self._expire_dedup(now)

    # -- dedup -------------------------------------------------------------------

    async def dedup_get(self, key: str) -> Any | None:
        hit = self._dedup.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            self._forget(key)
            return None
        return binary.loads(hit[1])

    async def dedup_put(self, key: str, result: Any, ttl: float) -> None:
        """Keep the encoded ack for ``ttl`` s, within ``dedup_max_bytes`` (the oldest go first).

        An ack over ``dedup_entry_max_bytes`` is not kept: a retransmission then runs again.
        """
        s = self._settings
        ack = binary.dumps(result, option=orjson.OPT_NON_STR_KEYS)  # a handler's bytes too
        self._forget(key)
        if len(ack) > s.dedup_entry_max_bytes:
            return
        cost = len(key) + len(ack) + DEDUP_OVERHEAD
        now = time.monotonic()
        self._dedup[key] = (now + ttl, ack, cost)
        self.dedup_bytes += cost
        while self.dedup_bytes > s.dedup_max_bytes:
            _, (_, _, dropped) = self._dedup.popitem(last=False)
            self.dedup_bytes -= dropped
        self._expire_dedup(now)

    def _forget(self, key: str) -> None:
        hit = self._dedup.pop(key, None)
        if hit is not None:
            self.dedup_bytes -= hit[2]

    def _expire_dedup(self, now: float) -> None:
        # Every entry lives the same window, so the oldest are the first to expire.
        dedup = self._dedup
        while dedup:
            key = next(iter(dedup))
            if dedup[key][0] >= now:
                return
            self.dedup_bytes -= dedup.popitem(last=False)[1][2]

    # -- presence ----------------------------------------------------------------

    async def presence_write(self, changes: Mapping[PresenceKey, Member | None]) -> None:
        for (namespace, room, sid), member in changes.items():
            members, order = self._presence.setdefault((namespace, room), ({}, []))
            if member is not None:
                if sid not in members:
                    insort(order, sid)
                members[sid] = member
            elif members.pop(sid, None) is not None:
                del order[bisect_left(order, sid)]
            if not members:
                del self._presence[(namespace, room)]

    async def presence_page(self, namespace: str, room: str, after: str | None, limit: int) -> Page:
        members, order = self._presence.get((namespace, room), ({}, []))
        start = 0 if after is None else bisect_right(order, after)  # sids compare as Redis's BYLEX does
        sids = order[start:start + limit]
        return Page([members[sid] for sid in sids], sids[-1] if start + limit < len(order) else None)

    async def presence_beat(self) -> Beat:
        return Beat()  # one process: alive as long as it answers

    # -- sessions ----------------------------------------------------------------

    async def save_session(self, record: SessionRecord, ttl: float, *, take: bool = False) -> None:
        held = self._sessions.get(record.sid)
        if take or held is None or held.node == record.node:
            self._sessions[record.sid] = record

    async def load_session(self, sid: str) -> SessionRecord | None:
        return self._sessions.get(sid)

    async def drop_session(self, sid: str, *, expired: bool, ttl: float, key_hash: str = "") -> None:
        record = self._sessions.pop(sid, None)
        if record is not None:
            # Its personal room dies with it; without this every connection ever made
            # would leave a log behind.
            log = self._logs.pop((record.namespace, sid), None)
            if log is not None:
                self.log_bytes -= log.bytes
        if expired:
            self._tombstones[sid] = (time.monotonic() + ttl, key_hash)
            self._sweep_tombstones()

    def _sweep_tombstones(self) -> None:
        # Amortised: every 1024 writes drop what has outlived its TTL, so the map
        # stays bounded by the write rate times its window.
        self._writes += 1
        if self._writes % 1024:
            return
        now = time.monotonic()
        self._tombstones = {k: v for k, v in self._tombstones.items() if v[0] >= now}

    async def expired_session(self, sid: str) -> str | None:
        tombstone = self._tombstones.get(sid)
        return tombstone[1] if tombstone is not None and tombstone[0] >= time.monotonic() else None

    # -- the operator view ---------------------------------------------------------

    async def put_snapshot(self, snapshot: bytes, ttl: float) -> None:
        self._snapshot = (time.monotonic() + ttl, snapshot)

    async def snapshots(self) -> list[bytes]:
        """This node's snapshot (the only node), unless it has expired."""
        until, snapshot = self._snapshot
        return [snapshot] if snapshot and until >= time.monotonic() else []


__all__ = ["MemoryBroker"]
