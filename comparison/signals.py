"""Ctrl-C, SIGTERM and SIGHUP end a run through the same cleanup as a failure.

``install()`` turns SIGTERM and SIGHUP into ``KeyboardInterrupt`` (SIGINT already is one).
``deferred_signals()`` wraps cleanup code: a signal arriving meanwhile is held and raised
once the cleanup is done, so a second Ctrl-C cannot leave a child process behind.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install() -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    received: list[int] = []
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for sig in saved:
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if received:
            raise KeyboardInterrupt(signal.Signals(received[0]).name)
