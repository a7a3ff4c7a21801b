"""CPU and memory of the processes in a cell, sampled every half second on a thread (psutil).

CPU percentages are of one core (a process busy on one core is 100 %). The machine's
total is sampled too, so what *other* processes took during a cell can be reported: this
machine may be shared, and a cell measured while something else was busy should say so.
Exact CPU seconds come from ``cpu_times`` deltas (``cpu_seconds``), not from the samples.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Final

import psutil

INTERVAL: Final = 0.5


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # time.time(): comparable with Locust's timestamps
    cpu: dict[str, float]  # percent of one core, per process name
    rss: dict[str, int]  # bytes, per process name
    machine_cores: float  # cores busy on the whole machine


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return float("nan")
    return float(times.user + times.system)


@dataclass(slots=True)
class Sampler:
    """``with Sampler({"gateway": pid, ...}) as s: ...; s.summary(window)``."""

    pids: dict[str, int]
    interval: float = INTERVAL
    samples: list[Sample] = field(default_factory=list)
    _processes: dict[str, psutil.Process] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        for name, pid in self.pids.items():
            try:
                self._processes[name] = psutil.Process(pid)
            except psutil.Error:
                continue

    def add(self, name: str, pid: int) -> None:
        """Start sampling one more process (Locust, once it is started)."""
        try:
            process = psutil.Process(pid)
            process.cpu_percent(None)  # primes the counter: the first reading is always 0
        except psutil.Error:
            return
        self._processes[name] = process

    def start(self) -> Sampler:
        for process in self._processes.values():
            try:
                process.cpu_percent(None)
            except psutil.Error:
                pass
        psutil.cpu_percent(None)
        self._thread = threading.Thread(target=self._run, name="comparison-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        cores = psutil.cpu_count() or 1
        while not self._stop.wait(self.interval):
            cpu: dict[str, float] = {}
            rss: dict[str, int] = {}
            for name, process in list(self._processes.items()):
                try:
                    with process.oneshot():
                        cpu[name] = process.cpu_percent(None)
                        rss[name] = process.memory_info().rss
                except psutil.Error:
                    continue  # it ended: its last samples stand
            machine = psutil.cpu_percent(None) * cores / 100
            self.samples.append(Sample(time.time(), cpu, rss, machine))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval * 4)

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def summary(self, window: tuple[float, float] | None = None) -> dict[str, object]:
        """Mean and max CPU %, max RSS (MB) per process, and the other processes' mean cores,
        over the samples inside ``window`` (wall-clock seconds; all samples when ``None``)."""
        chosen = [s for s in self.samples if window is None or window[0] <= s.t <= window[1]]
        out: dict[str, object] = {"samples": len(chosen)}
        cpu: dict[str, dict[str, float | None]] = {}
        rss: dict[str, float | None] = {}
        for name in self._processes:
            values = [s.cpu[name] for s in chosen if name in s.cpu]
            cpu[name] = {"mean": round(statistics.fmean(values), 1) if values else None,
                         "max": round(max(values), 1) if values else None}
            sizes = [s.rss[name] for s in self.samples if name in s.rss]  # peak over the whole cell
            rss[name] = round(max(sizes) / 2**20, 1) if sizes else None
        others = [max(0.0, s.machine_cores - sum(s.cpu.values()) / 100) for s in chosen]
        out["cpu_pct"] = cpu
        # The busiest load-generator process (Locust's master or one of its workers), mean % of a core.
        generator = [v["mean"] for name, v in cpu.items() if name.startswith("locust") and v["mean"] is not None]
        out["generator_cpu_pct_max"] = max(generator) if generator else None
        out["rss_mb_max"] = rss
        out["other_cores_mean"] = round(statistics.fmean(others), 2) if others else None
        return out
