"""The generator's receive path in C (``csink.c``): its build, its ctypes binding, its ``Sink``.

The Python clients do the handshakes; then each subscriber's socket is handed to one C
epoll loop, which runs in a thread (ctypes releases the GIL for the whole call), so a
delivery costs a share of a ``recvmsg`` and a byte scan instead of Python. Latency is
taken from the kernel's receive stamp (``SO_TIMESTAMPNS``, CLOCK_REALTIME) of the read
that carried the payload, so the publisher stamps payloads with ``time.time_ns()`` when
this sink is used (``Publisher.realtime``); the generator's own delay in reading is
recorded beside it (*read lag*: read time − kernel stamp), which shows whether it keeps up.

Latency comes from a sample of the connections (*eager*: read as soon as they are readable);
the others (*lazy*) are read every ``lazy_ms``, so that one read and one TCP window update
serve many deliveries. Lazy connections count their deliveries, duplicates and gaps all the
same, and answer their pings, only later.

The binding, for any load profile::

    sink = CSink(max_conns=1000, ring=1 << 21)   # compiles csink.c on first use (CompilerMissing)
    index = sink.add(os.dup(fd), Kind.WS)          # takes ownership of the fd; any time
    sink.add(os.dup(other), Kind.WS, eager=False)  # counted, read every lazy_ms, no latency sample
    sink.start()                                   # the loop, in a daemon thread (or: sink.poll(ms))
    sink.totals()                                  # live counters (Totals)
    latencies, lags = sink.take()                  # the samples since the last take (ns)
    sink.conn(index)                               # one connection's counters (ConnStats)
    sink.stop(); sink.close()                      # close() closes every fd it was given

``KernelSink`` is the same loop as the generator's ``Sink``: ``adopt`` hands a connection
over (every ``latency_sample``-th one eager), ``pump`` files the samples under the current
phase every 2 ms.
"""

from __future__ import annotations

import asyncio
import bisect
import ctypes
import enum
import functools
import hashlib
import os
import shutil
import socket
import subprocess
import threading
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from .connection import Conn
from .sink import Phase, Sink, Track

SOURCE: Final = Path(__file__).with_name("csink.c")
BUILD_DIR: Final = Path(__file__).resolve().parents[2] / "results" / ".build"
CFLAGS: Final = ("-O2", "-shared", "-fPIC")
GAPS: Final = 4  # as in csink.c
WINDOW: Final = 1024  # as in csink.c
ALL_SEEN: Final = (1 << 64) - 1
# The lazy set's period: long enough that one read drains many deliveries, short enough that
# a socket's backlog stays far below its receive buffer (checked: Totals.lazy_max_bytes) and an
# Engine.IO ping's pong is not late by anything a server would notice.
LAZY_MS: Final = 35


class CompilerMissing(RuntimeError):
    """No C compiler to build ``csink.c`` with: the generator can only use the Python path."""


class Kind(enum.IntEnum):
    """How the C loop de-frames a connection's bytes before scanning them."""

    SSE_CHUNKED = 0  # an HTTP/1.1 chunked body (the SSE stream after its response head)
    RAW = 1  # bytes as they come (an SSE stream without chunking)
    WS = 2  # WebSocket server frames; Engine.IO pings (text "2") are answered "3"


ENDED: Final = {
    1: "closed by the server (EOF)",
    2: "WebSocket closed by the server",
    3: "read error",
    4: "protocol error (C sink)",
    5: "the stream ended (last chunk)",
    6: "could not write a pong",
}


class Totals(ctypes.Structure):
    """The loop's counters (``totals_t``). ``samples`` is the ring's write index."""

    _fields_ = [(name, ctypes.c_int64) for name in (
        "deliveries", "duplicates", "samples", "dropped", "reads", "bytes", "unstamped", "ended", "pongs",
        "wakeups", "lazy_services", "lazy_reads", "lazy_max_bytes")]


class ConnStats(ctypes.Structure):
    """One connection (``conn_stats_t``): deliveries (first arrivals), duplicates, the highest
    seq, which of the last ``WINDOW`` seqs arrived (a late one fills its hole), the first
    ``GAPS`` ranges of seqs missing before that window and how many further ones skipped, and
    why it ended."""

    _fields_ = [
        ("deliveries", ctypes.c_int64), ("duplicates", ctypes.c_int64), ("last_seq", ctypes.c_int64),
        ("seen", ctypes.c_uint64 * (WINDOW // 64)),
        ("gap_first", ctypes.c_int64 * GAPS), ("gap_last", ctypes.c_int64 * GAPS),
        ("gaps", ctypes.c_int64), ("gap_more", ctypes.c_int64), ("ended", ctypes.c_int32), ("kind", ctypes.c_int32),
    ]


def build() -> Path:
    """``csink.c`` compiled with the system ``cc`` into ``results/.build/``, once per source and flags."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(CFLAGS).encode()).hexdigest()[:16]
    target = BUILD_DIR / f"csink-{digest}.so"
    if target.exists():
        return target
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise CompilerMissing(f"no C compiler ({cc!r} not found): the C receive path cannot be built")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")  # concurrent builds: last rename wins
    done = subprocess.run([cc, *CFLAGS, "-o", str(partial), str(SOURCE)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"{cc} failed on {SOURCE.name}: {done.stderr[-2000:]}")
    os.replace(partial, target)
    return target


@functools.cache
def load() -> ctypes.CDLL:
    """The compiled library with its signatures (``CDLL``: the GIL is released during calls)."""
    lib = ctypes.CDLL(str(build()))
    p, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
    i64p = ctypes.POINTER(ctypes.c_int64)
    for name, restype, argtypes in (
        ("csink_new", p, [i32, i64, i32]),
        ("csink_add", i32, [p, ctypes.c_int, i32, i64, i32]),
        ("csink_poll", i32, [p, i32]),
        ("csink_run", i32, [p]),
        ("csink_stop", None, [p]),
        ("csink_totals", None, [p, ctypes.POINTER(Totals)]),
        ("csink_conn", i32, [p, i32, ctypes.POINTER(ConnStats)]),
        ("csink_take", i64, [p, i64, i64, i64p, i64p]),
        ("csink_free", None, [p]),
    ):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


class CSink:
    """One C receive loop over up to ``max_conns`` sockets, with a ring of ``ring`` latency
    samples (16 bytes each): samples not taken before the ring fills are dropped and counted
    (``Totals.dropped``); deliveries are counted regardless. Lazy connections are read every
    ``lazy_ms``."""

    def __init__(self, max_conns: int, ring: int = 1 << 21, lazy_ms: int = LAZY_MS) -> None:
        self.lib = load()
        self.handle = self.lib.csink_new(max_conns, ring, lazy_ms)
        if not self.handle:
            raise MemoryError("csink_new failed")
        self.taken = 0  # ring index of the next sample to take
        self.thread: threading.Thread | None = None
        self.error = 0  # csink_run's result, once it returned

    def add(self, fd: int, kind: Kind, last_seq: int = 0, eager: bool = True) -> int:
        """Watch ``fd`` (owned from now on, even when this fails) from seq ``last_seq`` on,
        eagerly (latency samples) or lazily (counted only); returns its index for ``conn``."""
        index = self.lib.csink_add(self.handle, fd, int(kind), last_seq, int(eager))
        if index < 0:
            os.close(fd)
            raise OSError(-index, f"csink_add: {os.strerror(-index)}")
        return int(index)

    def poll(self, timeout_ms: int = 0) -> int:
        """One turn of the loop in the calling thread (instead of ``start``): wait up to
        ``timeout_ms`` and read every ready socket; returns how many were ready."""
        ready = self.lib.csink_poll(self.handle, timeout_ms)
        if ready < 0:
            raise OSError(-ready, os.strerror(-ready))
        return int(ready)

    def start(self) -> None:
        """Run the loop in a daemon thread until ``stop``."""
        self.thread = threading.Thread(target=self._run, name="csink", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.error = self.lib.csink_run(self.handle)

    def stop(self) -> None:
        """Stop the loop (it notices within 50 ms) and wait for it."""
        self.lib.csink_stop(self.handle)
        if self.thread is not None:
            self.thread.join(5)

    def totals(self) -> Totals:
        out = Totals()
        self.lib.csink_totals(self.handle, ctypes.byref(out))
        return out

    def conn(self, index: int) -> ConnStats:
        out = ConnStats()
        if self.lib.csink_conn(self.handle, index, ctypes.byref(out)) < 0:
            raise IndexError(index)
        return out

    def take(self) -> tuple[array, array]:
        """The latency and read-lag samples (ns) written since the last take, oldest first."""
        head = self.totals().samples
        n = head - self.taken
        lat, lag = array("q", bytes(8 * n)), array("q", bytes(8 * n))
        if n:
            i64p = ctypes.POINTER(ctypes.c_int64)
            got = self.lib.csink_take(self.handle, self.taken, head,
                                      ctypes.cast(lat.buffer_info()[0], i64p), ctypes.cast(lag.buffer_info()[0], i64p))
            if got != n:
                raise RuntimeError(f"csink_take gave {got} of {n} samples")
            self.taken = head
        return lat, lag

    def close(self) -> None:
        """Free the loop and close its sockets (after ``stop``; a loop still running is leaked)."""
        if self.handle and (self.thread is None or not self.thread.is_alive()):
            self.lib.csink_free(self.handle)
            self.handle = None


def missing_in_window(st: ConnStats) -> list[int]:
    """The seqs of ``(last_seq - WINDOW, last_seq]`` that have not arrived (yet)."""
    out = []
    for word_index, word in enumerate(st.seen):
        if word == ALL_SEEN:
            continue
        for bit in range(64):
            if not word >> bit & 1:
                pos = word_index * 64 + bit
                seq = st.last_seq - (st.last_seq - pos) % WINDOW
                if seq > 0:
                    out.append(seq)
    return out


class KernelTrack(Track):
    """A subscriber handed to the C loop: its losses come from the loop's counters, plus
    whatever its Python ``Track`` saw before the handover."""

    __slots__ = ("before", "csink", "index")

    def __init__(self, sink: KernelSink, index: int, before: Track) -> None:
        super().__init__(sink)
        self.csink, self.index, self.before = sink.csink, index, before

    def add(self, found: Iterable[tuple[bytes, bytes]], now: int) -> None:
        raise TypeError("the C loop reads this connection")

    def lost(self, expected_seqs: Sequence[int]) -> int:
        """As ``Track.lost``, except that the seqs of gap ranges past the first ``GAPS`` are all
        counted, acknowledged or not (a conservative bound for a case that means trouble anyway)."""
        st = self.csink.conn(self.index)

        def within(first: int, last: int) -> int:
            return bisect.bisect_right(expected_seqs, last) - bisect.bisect_left(expected_seqs, first)

        holes = [*self.before.missing, *missing_in_window(st)]
        gaps = sum(within(st.gap_first[k], st.gap_last[k]) for k in range(st.gaps))
        after = len(expected_seqs) - bisect.bisect_right(expected_seqs, st.last_seq)
        return sum(within(s, s) for s in holes) + gaps + int(st.gap_more) + after


class KernelSink(Sink):
    """The generator's ``Sink`` with the subscribers' reads in C. ``delivered``, ``duplicates``
    and the current phase's samples are brought up to date by ``sync`` (every 2 ms by
    ``pump``, and at every phase start). A sample is filed under the phase current when it is
    taken, not under its seq's: phases are separated by a drain (or a quiesce), so nothing of
    one phase is still in flight when the next begins."""

    def __init__(self, max_conns: int, ring: int = 1 << 21, latency_sample: int = 1) -> None:
        super().__init__()
        self.csink = CSink(max_conns, ring)
        self.latency_sample = latency_sample  # every latency_sample-th adopted connection is eager
        self.conns: dict[int, Conn] = {}
        self.eager = 0
        self.lazy_rcvbuf_min: int | None = None  # the smallest SO_RCVBUF of a lazy socket, at adoption
        self._seen = Totals()  # what the last sync accounted for
        self._running = False

    def begin(self, name: str, first_seq: int) -> Phase:
        self.sync()
        return super().begin(name, first_seq)

    def sync(self) -> None:
        totals = self.csink.totals()
        latencies, lags = self.csink.take()
        phase = self.phases[-1]
        phase.latencies.extend(latencies)
        phase.lags.extend(lags)
        # First arrivals since the last sync, less those sampled (a sample may be taken a sync
        # before its count: the difference evens out within the phase, which begins with a sync).
        phase.unsampled += totals.deliveries - self._seen.deliveries - len(latencies)
        self.delivered += totals.deliveries - self._seen.deliveries
        self.duplicates += totals.duplicates - self._seen.duplicates
        if totals.ended != self._seen.ended:
            for index, conn in self.conns.items():
                ended = self.csink.conn(index).ended
                if ended and conn.ended is None:
                    conn.ended = ENDED.get(ended, f"ended ({ended})")
        self._seen = totals

    def stats(self) -> dict[str, int]:
        """The loop's counters, for the result."""
        totals = self.csink.totals()
        return {**{field[0]: getattr(totals, field[0]) for field in Totals._fields_}, "loop_error": self.csink.error,
                "latency_sample": self.latency_sample, "latency_connections": self.eager,
                "connections": len(self.conns), "lazy_ms": LAZY_MS, "lazy_rcvbuf_min_bytes": self.lazy_rcvbuf_min}

    async def adopt(self, conn: Conn, track: Track, tries: int = 100) -> KernelTrack:
        """Hand ``conn``'s reads to the C loop, eagerly if it is a ``latency_sample``-th one in
        adoption order (connect order: the sample spans the fan-out order). Its transport stops
        reading (it stays open, and writes nothing more); the loop reads a duplicate of its
        socket from the first byte Python did not read. A connection whose parser is mid-frame reads on until it is not
        (up to ``tries`` × 10 ms), so no byte is lost or read twice."""
        transport = conn.transport
        assert transport is not None
        for _ in range(tries):
            transport.pause_reading()
            kind = conn.handover()
            if kind is not None:
                break
            transport.resume_reading()
            await asyncio.sleep(0.01)
        else:
            raise ConnectionError("handover: the connection never came to a frame boundary")
        sock = transport.get_extra_info("socket")
        eager = len(self.conns) % self.latency_sample == 0
        if not eager:
            rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            self.lazy_rcvbuf_min = min(rcvbuf, self.lazy_rcvbuf_min or rcvbuf)
        index = self.csink.add(os.dup(sock.fileno()), kind, track.expected - 1, eager)
        self.eager += eager
        self.conns[index] = conn
        return KernelTrack(self, index, track)

    async def pump(self, interval: float = 0.002) -> None:
        """Start the loop and ``sync`` every ``interval`` until ``stop``."""
        self.csink.start()
        self._running = True
        while self._running:
            self.sync()
            await asyncio.sleep(interval)

    def stop(self) -> None:
        """Stop the loop, after a last ``sync`` (its counters stay readable until ``close``)."""
        self._running = False
        self.csink.stop()
        self.sync()

    def close(self) -> None:
        self.csink.close()
