"""A bounded per-room log of room events, in memory (pure, no event loop).

Trims by length and by age, and remembers the highest offset it ever trimmed so
a replay can tell "nothing missed" from "the log no longer holds what you missed".
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .envelope import Envelope
from .errors import OffsetFromFuture
from .offsets import parse_offset


@dataclass(frozen=True, slots=True)
class Replay:
    """Events after a position, and whether the log still held all of them."""

    events: list[Envelope]
    complete: bool


class RoomLog:
    """The log of one room; offsets are ``"<epoch_ms>-<seq>"``."""

    __slots__ = ("_entries", "_epoch", "_seq", "_max_length", "_max_age_ms", "_trimmed")

    def __init__(self, epoch_ms: int, max_length: int, max_age_s: float) -> None:
        self._entries: deque[Envelope] = deque()
        self._epoch = epoch_ms
        self._seq = 0
        self._max_length = max_length
        self._max_age_ms = int(max_age_s * 1000)
        # Everything at or below this offset may be gone: the epoch start, or the last trimmed entry.
        self._trimmed = (epoch_ms, 0)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last_offset(self) -> str:
        return f"{self._epoch}-{self._seq}"

    def next_offset(self) -> str:
        self._seq += 1
        return f"{self._epoch}-{self._seq}"

    def append(self, envelope: Envelope, now_ms: int) -> None:
        self._entries.append(envelope)
        self.trim(now_ms)

    def trim(self, now_ms: int) -> None:
        entries = self._entries
        horizon = now_ms - self._max_age_ms
        while entries and (len(entries) > self._max_length or entries[0].ts < horizon):
            self._trimmed = parse_offset(entries.popleft().offset)

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
