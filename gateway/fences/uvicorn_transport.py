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

``body_writer``: an event stream's chunks written to the transport by a plain call, not
through the ASGI ``send`` coroutine (see its docstring).

The names it touches, and why: ``send.__self__``, uvicorn's request cycle (``send`` is
its bound method), and the cycle's ``transport`` attribute (the httptools and h11
implementations both have it); then only the transport's public asyncio API
(``set_write_buffer_limits``, ``abort``, ``is_closing``, ``write``; uvloop's transports
have them too). ``body_writer`` also reads the httptools cycle's ``chunked_encoding``,
``response_started``, ``response_complete``, ``disconnected`` and ``flow`` (its
``write_paused`` and ``drain()``), and returns None for any other cycle (h11's frames
its body itself): the stream then writes through ``send`` as before. ``tests/test_fences.py`` checks them on a real server of the installed uvicorn,
both HTTP implementations, both event loops. If uvicorn changed them, both would return
False: a cut stream is closed gracefully, as before, and up to one chunk a stream sits
in the event loop's buffer uncounted; ``tests/test_memory_bounds.py`` pins both (the
reset, and the byte bound cutting 100 readers that stopped reading).
"""

from __future__ import annotations

from typing import Any

from starlette.types import Send


def _transport(send: Send) -> Any:
    """The transport under uvicorn's ``send``, or None. Duck-typed: uvloop's transports
    are not ``asyncio.Transport`` subclasses."""
    return getattr(getattr(send, "__self__", None), "transport", None)


def pause_until_written(send: Send) -> bool:
    """Make the server's flow control wait until the transport has written all we gave it.

    uvicorn's ``send`` returns once a chunk is in the transport's buffer and waits for
    it to drain only before the next write, below a high-water mark of 64 KiB; the
    event loop meanwhile keeps the whole chunk (not just what is left of it). At a
    high-water mark of 0, "drained" means "written": an event stream's ``writing`` then
    lasts exactly as long as it holds memory, which its byte bounds count. A client
    that keeps up is unaffected: its writes complete at once. False if unreachable.
    """
    set_limits = getattr(_transport(send), "set_write_buffer_limits", None)
    if set_limits is None:
        return False
    set_limits(high=0)
    return True


def abort(send: Send) -> bool:
    """Reset the connection that ``send`` writes to, dropping unsent data; False if it cannot be reached."""
    transport = _transport(send)
    if transport is None or not hasattr(transport, "abort") or transport.is_closing():
        return False
    transport.abort()
    return True


class BodyWriter:
    """An event stream's body chunks, written straight to uvicorn's transport.

    A chunk through the ASGI ``send`` costs a coroutine, a message dict and uvicorn's
    checks of the response state, per write: at a fan-out to 1,000 streams that is a
    fixed share of every delivery. This frames the chunk as uvicorn would
    (``transfer-encoding: chunked``) and writes it; flow control is uvicorn's own
    (``pause_until_written``: the flow is paused while the transport holds any byte),
    so a stream knows at once whether its socket took the chunk. Only for a response
    whose head went out and whose body is not finished: the last, empty chunk still
    goes through ``send``, after every direct write (the stream ends only when none waits).
    """

    __slots__ = ("_cycle", "_flow", "_transport")

    def __init__(self, cycle: Any) -> None:
        self._cycle, self._transport, self._flow = cycle, cycle.transport, cycle.flow

    def write(self, chunk: bytes, tail: bytes = b"") -> bool:
        """Write ``chunk`` and ``tail`` as one chunk; False while the transport holds some of it
        (then await ``drained``).

        ``ConnectionError`` if the client is gone: the cycle saw the connection lost.
        """
        if self._cycle.disconnected or self._transport.is_closing():
            raise ConnectionError("the event stream's connection is closed")
        self._transport.write(b"%x\r\n%b%b\r\n" % (len(chunk) + len(tail), chunk, tail))
        return not self._flow.write_paused

    async def drained(self) -> None:
        """Return once the transport has written everything given to it (or the connection is lost)."""
        await self._flow.drain()
        if self._cycle.disconnected:
            raise ConnectionError("the event stream's connection was lost before its chunk was written")


def body_writer(send: Send) -> BodyWriter | None:
    """A ``BodyWriter`` for the chunked response body ``send`` is in the middle of, or None."""
    cycle = getattr(send, "__self__", None)
    if (
        getattr(cycle, "chunked_encoding", None) is not True
        or getattr(cycle, "response_started", False) is not True
        or getattr(cycle, "response_complete", True) is not False
        or not hasattr(cycle, "disconnected")
        or not hasattr(getattr(cycle, "flow", None), "drain")
        or not hasattr(getattr(cycle, "transport", None), "write")
    ):
        return None
    return BodyWriter(cycle)
