"""Hear the server's exit signal (SIGTERM, SIGINT) when the server does.

uvicorn, told to exit, stops accepting connections and then waits for every open one
to close before it runs the lifespan "shutdown" (for HTTP responses in progress,
``connection.shutdown()`` only turns keep-alive off). An event stream never closes by
itself, so the gateway must learn of the exit earlier, to send every stream its
``close {reason: "shutdown", reconnect: true}`` and end it. ASGI has no message for
that, and uvicorn no public hook.

So, while the app's lifespan runs, a handler for both signals is chained in front of
the one installed (uvicorn's ``Server.handle_exit``): it tells the app, on its event
loop, then calls that handler, and is taken out when the lifespan ends. No private
name is touched, and nothing is patched at import. What it relies on, in uvicorn:

- the server installs its handlers with ``signal.signal`` before it starts the
  lifespan (``Server.serve`` runs ``_serve``, which starts the lifespan, inside
  ``Server.capture_signals``), and restores what it found after serving;
- it runs its event loop on the main thread, the only one signals can be handled on.

``tests/test_fences.py`` checks both on the installed uvicorn; ``tests/test_lifecycle.py``
sends a real SIGTERM to ``python -m gateway`` and to ``uvicorn gateway.main:app``.
Off the main thread (a server run in a thread, as most tests do), nothing is chained:
the server's own stop ends open streams at its graceful-shutdown timeout, then the
lifespan shutdown closes the sessions.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def exit_signals_heard(notify: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT call ``notify`` on the running loop, then the server's handler.

    Signals nobody handles in Python (their default or ignored) are left alone: the
    process then ends, or does not, as it would have anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    chained: dict[int, Callable[[int, FrameType | None], object]] = {}
    active = True

    def heard(sig: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of the main thread, possibly
        # inside the loop's own code: hand ``notify`` over as another thread would.
        if active:
            loop.call_soon_threadsafe(notify)
        chained[sig](sig, frame)

    for sig in EXIT_SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler):
            chained[sig] = handler
            signal.signal(sig, heard)
    try:
        yield
    finally:
        active = False
        for number, handler in chained.items():
            if signal.getsignal(number) is heard:  # else chained in front of us: it still calls us, we pass it on
                signal.signal(number, handler)
