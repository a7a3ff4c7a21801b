"""What every publisher of the generator does: number its publishes and count their acks.

A transport's publisher (``client_sse.SsePublisher``, ``client_socketio.SioPublisher``)
implements ``publish`` without blocking and calls ``settle`` when the server answers.
"""

from __future__ import annotations

import asyncio
import time


class Publisher:
    """Publish ``seq`` numbers in order; ``acked``/``failed`` say what the server answered."""

    def __init__(self) -> None:
        self.next_seq = 1
        self.inflight = 0
        self.acked: list[int] = []  # seqs the server acknowledged, in ack order
        self.failed: dict[int, str] = {}  # seq -> why (error ack, HTTP status, lost connection)
        self.progress = asyncio.Event()  # set at every answer, for a closed loop waiting on its window
        # Payloads carry CLOCK_REALTIME (the clock of the kernel's receive stamps, which the C
        # sink measures against) instead of the monotonic clock the Python sink reads.
        self.realtime = False

    def publish(self, t_ns: int) -> bool:
        """Send the next payload stamped ``t_ns`` (``time.monotonic_ns()``, converted to the
        realtime clock if ``realtime``); False when the publisher cannot take more."""
        seq = self.next_seq
        if self.realtime:
            t_ns += time.time_ns() - time.monotonic_ns()
        if not self._send(seq, t_ns):
            return False
        self.next_seq = seq + 1
        self.inflight += 1
        return True

    def _send(self, seq: int, t_ns: int) -> bool:
        raise NotImplementedError

    def settle(self, seq: int, error: str | None) -> None:
        self.inflight -= 1
        if error is None:
            self.acked.append(seq)
        else:
            self.failed[seq] = error
        self.progress.set()

    @property
    def backlog(self) -> int:
        """Publishes due but not yet written to a socket (waiting for a free connection)."""
        return 0

    @property
    def published(self) -> int:
        return self.next_seq - 1

    async def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
