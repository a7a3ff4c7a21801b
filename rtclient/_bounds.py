"""Waiting for something that may never finish, without hanging the caller.

Every client call returns or raises within a bound. Two things stand in the way: a library
call that may hang (closing an HTTP response, a WebSocket close handshake to a dead peer,
python-engineio's loops, a long-poll in flight), and waiting for a task of our own that is
being cancelled. Both go through here: waited for at most a bound, then left behind,
counted in ``Stats.abandoned`` and logged (the 1st, 2nd, 4th... time per client).

Cancellation: a caller cancelled while it waits here gets its ``CancelledError``; nothing
here suppresses it (``asyncio.wait`` neither swallows the caller's cancellation nor cancels
what it waits for).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .protocol import Stats, worth_logging

log = logging.getLogger("rtclient")
T = TypeVar("T")

# How long letting go of a connection may take (each step): a healthy peer answers a close
# in milliseconds; longer means it is gone, and waiting longer gains nothing.
CLOSE_BOUND = 2.0


def _abandoned(stats: Stats, what: str, within: float) -> None:
    stats.abandoned += 1
    if worth_logging(stats.abandoned):
        log.warning("%s did not finish within %.1f s: left behind (%d so far)", what, within, stats.abandoned)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a left-behind task's outcome as seen (no "exception was never retrieved")."""
    if not task.cancelled():
        task.exception()


def let_go(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` without waiting for it (the caller is itself being cancelled: it must
    not wait in its ``except``/``finally``, where a second cancellation cannot reach it)."""
    if task is not None and task is not asyncio.current_task():
        task.cancel()
        task.add_done_callback(_retrieve)


async def reap(task: asyncio.Future[Any] | None, within: float, what: str, stats: Stats) -> None:
    """Cancel ``task`` and wait for it to end, at most ``within`` s; then leave it behind
    (counted). The task's own outcome is dropped; the caller's cancellation is not."""
    if task is None or task is asyncio.current_task():
        return
    task.cancel()
    if not task.done():
        await asyncio.wait({task}, timeout=within)
    if task.done():
        _retrieve(task)
    else:
        task.add_done_callback(_retrieve)
        _abandoned(stats, what, within)


async def bounded(call: Awaitable[Any], within: float, what: str, stats: Stats) -> None:
    """Run a library call that lets something go (a close, a disconnect), at most ``within`` s.

    Its failure is logged (debug) and dropped: letting go of a broken connection may fail,
    and the connection is gone either way. Past the bound it is cancelled and left behind.
    """
    task = asyncio.ensure_future(call)
    try:
        await asyncio.wait({task}, timeout=within)
    except asyncio.CancelledError:
        let_go(task)  # the caller gave up: so does the call
        raise
    if not task.done():
        let_go(task)  # asked, not awaited: a close that ignores it must not hold us
        _abandoned(stats, what, within)
        return
    if not task.cancelled() and task.exception() is not None:
        log.debug("%s failed: %r", what, task.exception())


def bounded_blocking(call: Callable[[], object], within: float, what: str, stats: Stats) -> None:
    """``bounded`` for the blocking driver: ``call()`` on a daemon thread (a greenlet under
    gevent), waited for at most ``within`` s, then left to finish on its own (counted)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except Exception as exc:  # a close of a broken connection may fail: gone either way
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True, name=f"rtclient-{what}")
    thread.start()
    thread.join(within)
    if thread.is_alive():
        _abandoned(stats, what, within)
    elif failure:
        log.debug("%s failed: %r", what, failure[0])
