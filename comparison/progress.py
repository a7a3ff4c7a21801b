"""A small progress bar for a plain terminal: which cell, elapsed, time left.

On a terminal it redraws one line in place; otherwise (output to a file, CI) it prints a
line whenever the step changes, so a log shows the same information without control codes.
The time left is the planned load seconds of the steps still to run plus, per step, the
overhead measured so far (starting processes, Locust's own start and stop).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

# Seconds a repeat costs beyond its load, before any was measured: the mean over the 111 runs of
# the full run of 2026-12-07 on this 2-core machine (9.9 s; Locust distributed, a fresh gateway and proxy).
INITIAL_OVERHEAD = 10.0
# The share of load-ladder steps a full run is expected to run: a ladder stops at its first step
# past the bound (21 of 55 steps ran in the full run of 2026-12-07).
LADDER_SHARE = 0.4


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, s = divmod(seconds, 60)
    return f"{minutes}m{s:02d}s" if minutes else f"{s}s"


@dataclass(slots=True)
class Progress:
    """``steps`` are the planned load seconds of each repeat, in the order they run."""

    steps: list[float]
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    label: str = ""
    step_started: float = field(default_factory=time.monotonic)
    overheads: list[float] = field(default_factory=list)
    _last_line: str = ""
    _shown: float = 0.0  # the fraction last shown: the bar never moves back

    @property
    def tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def begin(self, label: str) -> None:
        self.label = label
        self.step_started = time.monotonic()
        self.draw(force=True)

    def end(self) -> None:
        if self.done < len(self.steps):
            spent = time.monotonic() - self.step_started
            self.overheads.append(max(0.0, spent - self.steps[self.done]))
            self.done += 1
        self.step_started = time.monotonic()  # the next step's time starts now, not at the last begin()
        self.label = "done" if self.done >= len(self.steps) else "next"
        self.draw(force=True)

    def skip(self) -> None:
        """A step that will not run (a ladder ended below it): done, with no overhead to learn from."""
        if self.done < len(self.steps):
            self.steps[self.done] = 0.0
            self.done += 1
        self.step_started = time.monotonic()
        self.label = "done" if self.done >= len(self.steps) else "next"
        self.draw(force=True)

    def remaining(self) -> float:
        overhead = sum(self.overheads) / len(self.overheads) if self.overheads else INITIAL_OVERHEAD
        left = sum(s + overhead for s in self.steps[self.done:])
        if self.done < len(self.steps):
            left -= min(time.monotonic() - self.step_started, self.steps[self.done] + overhead)
        return max(0.0, left)

    def line(self) -> str:
        total = len(self.steps)
        elapsed = time.monotonic() - self.started
        left = self.remaining()
        finished = self.done >= total
        fraction = elapsed / (elapsed + left) if elapsed + left > 0 else 1.0
        # Forward only, and 100% only once every step has run: a new estimate of the time left
        # (a step that took longer than planned) slows the bar down instead of moving it back.
        fraction = 1.0 if finished else min(0.99, max(self._shown, fraction))
        self._shown = fraction
        width = 24
        filled = round(fraction * width)
        bar = "#" * filled + "-" * (width - filled)
        step = total if finished else self.done + 1
        return (f"[{bar}] {fraction * 100:3.0f}% {step}/{total} {self.label}"
                f" | {clock(elapsed)} elapsed, ~{clock(left)} left")

    def draw(self, force: bool = False) -> None:
        text = self.line()
        if self.tty:
            columns = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r" + text[: columns - 1].ljust(columns - 1))
            self.stream.flush()
        elif force and text.split(" | ")[0] != self._last_line:
            self._last_line = text.split(" | ")[0]
            self.stream.write(text + "\n")
            self.stream.flush()

    def note(self, message: str) -> None:
        """A line above the bar (a failed repeat, a flag)."""
        if self.tty:
            self.stream.write("\r" + " " * (shutil.get_terminal_size((100, 20)).columns - 1) + "\r")
        self.stream.write(message + "\n")
        self.draw(force=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()
