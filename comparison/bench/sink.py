"""Where deliveries land: latency samples per phase and per-subscriber loss accounting (pure).

Every delivered payload carries ``t`` (the publisher's *scheduled* send time, in
``time.monotonic_ns()`` of the generator process, which both ends share) and ``seq``
(one counter for the whole run). A subscriber hands each ``(t, seq)`` pair it finds to
its ``Track`` with the time it read them; the latency is ``now - t``, which is never
zero, and a publisher that falls behind its schedule shows up as latency, not as fewer
samples (no coordinated omission).

A sample is filed under the phase its ``seq`` was published in (phases cover disjoint
``seq`` ranges), so a straggler from a saturated phase never pollutes the next one.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

MAX_GAP: Final = 1_000_000  # a seq jump larger than this is a protocol bug, not a loss to list


@dataclass(slots=True)
class Phase:
    """The deliveries of one measurement phase: ``seq`` in ``[first_seq, ...)``.

    One sample per delivery, 8 bytes each (16 with the C sink's read lags): a phase is
    bounded in time, so in size (ten seconds at 200,000 deliveries/s is 16 MB). The C sink
    samples latency on some connections only; the others' deliveries are only counted.
    """

    name: str
    first_seq: int
    latencies: array = field(default_factory=lambda: array("q"))  # ns
    lags: array = field(default_factory=lambda: array("q"))  # ns, read time - kernel stamp (C sink only)
    unsampled: int = 0  # deliveries without a latency sample (the C sink's lazily read connections)

    @property
    def deliveries(self) -> int:
        return len(self.latencies) + self.unsampled


class Sink:
    """Shared by every subscriber of one generator run."""

    def __init__(self) -> None:
        self.delivered = 0  # every delivery of a payload (duplicates included)
        self.duplicates = 0
        self.phases: list[Phase] = [Phase("connect", 0)]
        self._firsts: list[int] = [0]

    @property
    def phase(self) -> Phase:
        return self.phases[-1]

    def begin(self, name: str, first_seq: int) -> Phase:
        if first_seq < self.phases[-1].first_seq:
            raise ValueError("phases must cover increasing seq ranges")
        phase = Phase(name, first_seq)
        self.phases.append(phase)
        self._firsts.append(first_seq)
        return phase

    def phase_of(self, seq: int) -> Phase:
        return self.phases[bisect.bisect_right(self._firsts, seq) - 1]

    def sync(self) -> None:
        """Bring the counters up to date: nothing to do here, the tracks write them directly
        (``csink.KernelSink`` collects them from its C loop)."""


class Track:
    """One subscriber's view: which ``seq`` it got, which it missed, which twice.

    In-order arrival (the normal case) costs one comparison. A gap records the missing
    ``seq`` numbers; a late arrival fills its hole; anything else is a duplicate.
    """

    __slots__ = ("closed", "deliveries", "duplicates", "expected", "missing", "sink")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.expected = 1  # seq numbering starts at 1
        self.missing: set[int] = set()
        self.duplicates = 0
        self.deliveries = 0
        self.closed: str | None = None  # why the connection ended early, if it did

    def add(self, found: Iterable[tuple[bytes, bytes]], now: int) -> None:
        # The generator's hot path: one call per read, locals only, one append per delivery.
        sink = self.sink
        phase = sink.phases[-1]
        first = phase.first_seq
        record = phase.latencies.append
        expected = self.expected
        counted = 0
        for t, s in found:
            seq = int(s)
            if seq == expected:
                expected = seq + 1
            elif seq > expected:
                if seq - expected > MAX_GAP:
                    raise ValueError(f"seq jumped from {expected} to {seq}")
                self.missing.update(range(expected, seq))
                expected = seq + 1
            elif seq in self.missing:
                self.missing.discard(seq)
            else:
                self.duplicates += 1
                sink.duplicates += 1
                continue
            counted += 1
            if seq >= first:
                record(now - int(t))
            else:
                sink.phase_of(seq).latencies.append(now - int(t))
        self.expected = expected
        self.deliveries += counted
        sink.delivered += counted

    def lost(self, expected_seqs: Sequence[int]) -> int:
        """How many of ``expected_seqs`` (sorted: the acknowledged publishes) never arrived."""
        missing = sum(1 for s in self.missing if _contains(expected_seqs, s))
        after = len(expected_seqs) - bisect.bisect_left(expected_seqs, self.expected)
        return missing + after


def _contains(sorted_seqs: Sequence[int], seq: int) -> bool:
    i = bisect.bisect_left(sorted_seqs, seq)
    return i < len(sorted_seqs) and sorted_seqs[i] == seq


def percentiles(samples: array, points: Sequence[float] = (50, 90, 99, 99.9)) -> dict[str, float]:
    """Nearest-rank percentiles of ``samples`` (ns), in milliseconds, plus min and max."""
    if not samples:
        return {}
    ordered = sorted(samples)
    n = len(ordered)
    out = {f"p{p:g}": ordered[min(n - 1, max(0, math.ceil(p * n / 100) - 1))] / 1e6 for p in points}
    out["min"] = ordered[0] / 1e6
    out["max"] = ordered[-1] / 1e6
    return out
