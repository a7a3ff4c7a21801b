"""A bounded per-room log of room events, in memory (pure, no event loop).

Trims by length, by age and by bytes, and remembers the highest offset it ever
trimmed so a replay can tell "nothing missed" from "the log no longer holds what
you missed". An entry's bytes are the size of its encoded envelope, counted once
when it is logged; the broker adds a node-wide budget over every log
(``evict_oldest``) and drops logs that have emptied (``replay_without_log`` then
judges a replay of such a room).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from gateway.wire.envelope import Envelope
from gateway.wire.errors import OffsetFromFuture
from gateway.wire.offsets import parse_offset

Offset = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Replay:
    """Events after a position, and whether the log still held all of them."""

    events: list[Envelope]
    complete: bool


class RoomLog:
    """The log of one room; offsets are ``"<epoch_ms>-<seq>"``.

    ``seq`` and ``trimmed`` carry on a log that was dropped (see ``MemoryBroker``):
    its offsets keep increasing, and what it had trimmed stays a gap.
    """

    __slots__ = (
        "_entries",
        "_epoch",
        "_max_age_ms",
        "_max_bytes",
        "_max_length",
        "_order",
        "_seq",
        "_sizes",
        "_trimmed",
        "appended_ms",
        "bytes",
    )

    def __init__(
        self, epoch_ms: int, max_length: int, max_age_s: float, max_bytes: int = 1 << 62,
        *, seq: int = 0, trimmed: Offset | None = None,
    ) -> None:
        self._entries: deque[Envelope] = deque()
        self._sizes: deque[int] = deque()
        self._order: deque[int] = deque()  # each entry's place among every log's appends (the broker's count)
        self.bytes = 0  # what the entries held now weigh, encoded
        self._epoch = epoch_ms
        self._seq = seq
        self._max_length = max_length
        self._max_age_ms = int(max_age_s * 1000)
        self._max_bytes = max_bytes
        # Everything at or below this offset may be gone: the epoch start, or the last trimmed entry.
        self._trimmed = trimmed if trimmed is not None else (epoch_ms, seq)
        self.appended_ms = 0  # when the newest entry was logged (server time)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last(self) -> Offset:
        return (self._epoch, self._seq)

    @property
    def last_offset(self) -> str:
        return f"{self._epoch}-{self._seq}"

    @property
    def oldest(self) -> int:
        """The oldest entry's place in the node's order of appends (the log must not be empty)."""
        return self._order[0]

    def next_offset(self) -> str:
        self._seq += 1
        return f"{self._epoch}-{self._seq}"

    def append(self, envelope: Envelope, now_ms: int, size: int = 0, order: int = 0) -> None:
        """Log ``envelope`` (``size``: its encoded bytes; ``order``: its place among the
        node's appends, for a node-wide budget), then trim to the bounds.

        The newest entry is never trimmed for bytes alone: a room always holds its
        last event, however large (``max_payload`` bounds that)."""
        self._entries.append(envelope)
        self._sizes.append(size)
        self._order.append(order)
        self.bytes += size
        self.appended_ms = now_ms
        self.trim(now_ms)

    def trim(self, now_ms: int) -> None:
        entries = self._entries
        horizon = now_ms - self._max_age_ms
        while entries and (
            len(entries) > self._max_length or entries[0].ts < horizon
            or (self.bytes > self._max_bytes and len(entries) > 1)
        ):
            self.evict_oldest()

    def evict_oldest(self) -> int:
        """Drop the oldest entry whatever the bounds (a node-wide budget); returns its bytes."""
        self._trimmed = parse_offset(self._entries.popleft().offset)
        size = self._sizes.popleft()
        self._order.popleft()
        self.bytes -= size
        return size

    def since(self, after: str) -> Replay:
        """Entries strictly after ``after``; raises ``OffsetFromFuture`` past the end."""
        position = parse_offset(after)
        if position > (self._epoch, self._seq):
            raise OffsetFromFuture(
                f"offset {after} is beyond the last offset {self.last_offset}", offset=after
            )
        complete = position >= self._trimmed
        events = [e for e in self._entries if parse_offset(e.offset) > position]
        return Replay(events, complete)


def replay_without_log(after: str, ended: Offset | None, floor: Offset, now_ms: int) -> Replay:
    """A replay of a room that has no log: never published to, or its log emptied and was dropped.

    ``ended`` is the last offset of a dropped log, kept (by the broker) until every
    session that could have missed one of its events has resumed or expired: then
    only ``ended`` itself is complete. Without it, a position from this process
    (``>= floor``, its start) is complete: a session that missed an event of a log
    since forgotten was told so when it resumed while the log (or its ``ended``)
    was still there, or has expired. Raises ``OffsetFromFuture`` for an offset
    nobody issued yet.
    """
    position = parse_offset(after)
    if ended is not None:
        if position > ended:
            raise OffsetFromFuture(f"offset {after} is beyond the last offset {ended[0]}-{ended[1]}", offset=after)
        return Replay([], position >= ended)
    if position[0] > now_ms:
        raise OffsetFromFuture(f"offset {after} is from the future", offset=after)
    return Replay([], position >= floor)
