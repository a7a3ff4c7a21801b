"""The connection under an ASGI ``send``: the one reach into uvicorn's internals.

Two things ASGI cannot say, both for an event stream's byte bounds.

``abort``: a client that stops reading is cut as a slow consumer, but what was already
handed to the server (the chunk being written, up to ``session_queue_bytes``) stays
in the event loop's write buffer after the response ends, because a graceful close
waits for the peer to read it: a client that never reads holds that memory for as
long as it keeps the connection. Aborting frees it at once (the client sees a
reset, reconnects and resumes from the log, as after any cut). ASGI has no message
for that, so this takes the transport from uvicorn's request cycle, whose bound
``send`` the event stream is given (``sse.EventStreamHost`` runs it outside every
middleware; uvicorn's ``ProxyHeadersMiddleware`` passes ``send`` through as is).

``pause_until_written``: see its docstring.

What breaks if uvicorn changes: the cycle's ``transport`` attribute (httptools and
h11 implementations both have it). Then both return False: a cut stream is closed
gracefully, as before, and up to one chunk a stream sits in the event loop's buffer
uncounted; ``tests/test_memory_bounds.py`` pins both (the reset, and the byte bound
cutting 100 readers that stopped reading).
"""

from __future__ import annotations

from typing import Any


def pause_until_written(send: Any) -> bool:
    """Make the server's flow control wait until the transport has written all we gave it.

    uvicorn's ``send`` returns once a chunk is in the transport's buffer and waits for
    it to drain only before the next write, below a high-water mark of 64 KiB; the
    event loop meanwhile keeps the whole chunk (not just what is left of it). At a
    high-water mark of 0, "drained" means "written": an event stream's ``writing`` then
    lasts exactly as long as it holds memory, which its byte bounds count. A client
    that keeps up is unaffected: its writes complete at once. False if unreachable.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    set_limits = getattr(transport, "set_write_buffer_limits", None)
    if set_limits is None:
        return False
    set_limits(high=0)
    return True


def abort(send: Any) -> bool:
    """Reset the connection that ``send`` writes to, dropping unsent data; False if it cannot be reached."""
    # uvloop's transports are not asyncio.Transport subclasses: duck-typed.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    abort_now = getattr(transport, "abort", None)
    if abort_now is None or transport.is_closing():
        return False
    abort_now()
    return True
