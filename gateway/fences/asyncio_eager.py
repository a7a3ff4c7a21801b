"""Run an awaitable now, without a task, for as long as it does not have to wait.

An ASGI ``send`` of a chunk returns without waiting unless the socket's buffer
is full (flow control). Awaiting it from a task per connection costs a task
wake-up per delivery and the task's memory per idle connection; a room fan-out
instead calls ``run_eagerly`` for each subscriber and the write happens inside
the fan-out loop. When a ``send`` does have to wait, it is carried on from the
awaited future's callback, as a task would, and ``done`` runs when it finishes.
(Python 3.12's eager tasks do the same, at the price of a task object per call.)

What it drives must only await asyncio futures (and bare yields): no
``current_task()``, so no anyio cancel scopes. uvicorn's ``send`` and
``receive`` and Starlette's pure ASGI middleware qualify.

The private name it touches, and why: ``Future._asyncio_future_blocking``. A future
awaited from a coroutine sets it to True before yielding itself, to tell the task
driving the coroutine "park me on this future"; the task sets it back to False and
adds a done callback. Driving the coroutine ourselves, we do the same. If asyncio
renamed it, the future would stay marked as blocking a task: harmless today, but
``tests/test_fences.py`` fails first, so the next asyncio is read before it is trusted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import CoroutineType
from typing import Any, TypeVar

T = TypeVar("T")

# How an awaitable is stepped: a coroutine by itself (no wrapper object on the hot
# path), anything else through the iterator its ``__await__`` returns.
_Steps = Coroutine[Any, Any, T] | Generator[Any, None, T]


def run_eagerly(awaitable: Awaitable[T], done: Callable[[T | None, BaseException | None], None]) -> None:
    """Step ``awaitable`` until it waits or ends; ``done(result, error)`` once it has ended."""
    steps: _Steps[T] = awaitable if isinstance(awaitable, CoroutineType) else awaitable.__await__()
    try:
        waited = steps.send(None)
    except StopIteration as stop:
        done(stop.value, None)
        return
    except BaseException as exc:
        done(None, exc)
        return
    _Waiting(steps, done).wait(waited)


class _Waiting:
    """An awaitable parked on a future; lighter than a closure, as thousands of idle streams park one."""

    __slots__ = ("done", "steps")

    def __init__(self, steps: _Steps[Any], done: Callable[[Any, BaseException | None], None]) -> None:
        self.steps, self.done = steps, done

    def wait(self, waited: Any) -> None:
        if waited is None:  # a bare yield (asyncio.sleep(0)): go on at the next loop turn
            asyncio.get_running_loop().call_soon(self.step)
        else:
            waited._asyncio_future_blocking = False  # what a task does before waiting
            waited.add_done_callback(self.step)

    def step(self, _: object = None) -> None:
        try:
            waited = self.steps.send(None)
        except StopIteration as stop:
            self.done(stop.value, None)
        except BaseException as exc:
            self.done(None, exc)
        else:
            self.wait(waited)
