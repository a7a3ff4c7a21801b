"""Per-sender sequence tracking at a receiver: lost, duplicated, out-of-order (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["ok", "duplicate", "out-of-order"]


@dataclass(slots=True)
class SenderTrack:
    last: int = -1
    seen: set[int] = field(default_factory=set)
    abandoned: int = 0  # the sender's count of publishes it gave up on, as last reported


@dataclass(slots=True)
class SequenceTracker:
    """Feed ``(sender, seq)`` of each delivery; counts what a correct gateway never does."""

    senders: dict[str, SenderTrack] = field(default_factory=dict)
    lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0

    def see(self, sender: str, seq: int, abandoned: int = 0, first_expected: int | None = None) -> tuple[Verdict, int]:
        """Record one delivery; returns its verdict and how many sequence numbers it shows lost.

        The first delivery from a sender starts its track (a receiver that joined late
        did not miss what came before), unless ``first_expected`` says where it starts.
        ``abandoned`` is the sender's running count of publishes that failed (reported
        as publish failures): their numbers never existed, so they are not lost.
        """
        track = self.senders.get(sender)
        if track is None:
            track = self.senders[sender] = SenderTrack(
                last=(seq - 1) if first_expected is None else first_expected - 1, abandoned=abandoned
            )
        if seq in track.seen:
            self.duplicates += 1
            return "duplicate", 0
        track.seen.add(seq)
        if len(track.seen) > 4096:  # bounded: old numbers can no longer come back as duplicates
            floor = track.last - 2048
            track.seen = {s for s in track.seen if s > floor}
        if seq < track.last:
            self.out_of_order += 1
            # it had been counted lost when a later one arrived first
            self.lost -= 1
            return "out-of-order", 0
        excused = max(0, abandoned - track.abandoned)
        track.abandoned = max(track.abandoned, abandoned)
        missing = max(0, seq - track.last - 1 - excused)
        track.last = seq
        self.lost += missing
        return "ok", missing
