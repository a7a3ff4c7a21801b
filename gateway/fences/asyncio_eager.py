"""Run a coroutine now, without a task, for as long as it does not have to wait.

An ASGI ``send`` of a chunk returns without waiting unless the socket's buffer
is full (flow control). Awaiting it from a task per connection costs a task
wake-up per delivery and the task's memory per idle connection; a room fan-out
instead calls ``run_eagerly`` for each subscriber and the write happens inside
the fan-out loop. When a ``send`` does have to wait, the coroutine is carried
on from the awaited future's callback, as a task would, and ``done`` runs when
it finishes. (Python 3.12's eager tasks do the same, at the price of a task
object per call.)

What it drives must only await asyncio futures (and bare yields): no
``current_task()``, so no anyio cancel scopes. uvicorn's ``send`` and
``receive`` and Starlette's pure ASGI middleware qualify.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_eagerly(
    coro: Coroutine[Any, Any, T], done: Callable[[T | None, BaseException | None], None]
) -> None:
    """Step ``coro`` until it waits or ends; ``done(result, error)`` once it has ended."""
    try:
        waited = coro.send(None)
    except StopIteration as stop:
        done(stop.value, None)
        return
    except BaseException as exc:
        done(None, exc)
        return
    _wait(coro, waited, done)


def _wait(coro: Coroutine[Any, Any, T], waited: Any, done: Callable[[T | None, BaseException | None], None]) -> None:
    _Waiting(coro, done).wait(waited)


class _Waiting:
    """A coroutine parked on a future; lighter than a closure, as thousands of idle streams park one."""

    __slots__ = ("coro", "done")

    def __init__(self, coro: Coroutine[Any, Any, Any], done: Callable[[Any, BaseException | None], None]) -> None:
        self.coro, self.done = coro, done

    def wait(self, waited: Any) -> None:
        if waited is None:  # a bare yield (asyncio.sleep(0)): go on at the next loop turn
            asyncio.get_running_loop().call_soon(self.step)
        else:
            waited._asyncio_future_blocking = False  # what a task does before waiting
            waited.add_done_callback(self.step)

    def step(self, _: object = None) -> None:
        try:
            waited = self.coro.send(None)
        except StopIteration as stop:
            self.done(stop.value, None)
        except BaseException as exc:
            self.done(None, exc)
        else:
            self.wait(waited)
