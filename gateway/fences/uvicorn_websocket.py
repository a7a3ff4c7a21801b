"""A WebSocket's frames written straight to uvicorn's transport: a reach into uvicorn's WebSocket protocols.

A room event to 1,000 Socket.IO WebSockets went, per socket, through the ASGI ``send``
coroutine, its message dict and uvicorn's state checks, and through websockets' framing
of the same text again. A server's frames are not masked, so without an extension
(permessage-deflate) a text frame is the same bytes for every connection: ``text_frame``
builds them once per broadcast and ``FrameWriter.write`` hands them to each socket's
transport, as ``uvicorn_transport.BodyWriter`` does for an event stream's chunks.

The names it touches, and why: ``send.__self__``, the uvicorn WebSocket protocol whose
bound method ``send`` is (``WebSocketsSansIOProtocol.send``, uvicorn's default with
websockets installed, or ``WebSocketProtocol.asgi_send``, ``--ws websockets``), matched
by exact class: a subclass, wsproto or another server gets None and keeps the ``send``
path. Then, to know the connection is open, nobody else's frame is half written and the
transport is under its high-water mark (a frame then goes out whole in one
``transport.write``, as the protocol's own frames do):

- sans-I/O: ``handshake_complete``, ``close_sent``, ``initial_response``, ``disconnected``,
  ``writable`` (the event its flow control clears in ``pause_writing``), and its websockets
  ``conn``'s ``state`` and ``extensions``;
- legacy ``websockets``: ``handshake_completed_event``, ``closed_event``,
  ``initial_response``, and websockets' ``state``, ``extensions``, ``_paused`` (its flow
  control), ``_fragmented_message_waiter`` (a fragmented message being sent) and
  ``transfer_data_task``;
- both: ``transport`` (``write``, ``is_closing``).

Neither protocol keeps any other state about frames it sends, so a frame written here is
as if its ``send`` had written it. ``tests/test_fences.py`` checks all of it on a real
server of the installed uvicorn, both implementations, both event loops. If uvicorn renamed
a class or its ``send``, ``websocket_writer`` returns None and the ``send`` path is used; if
it dropped one of the state names, ``ready`` would raise ``AttributeError``: those tests
fail on it first (pyproject.toml bounds uvicorn's version).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import Send
from websockets.frames import Frame, Opcode
from websockets.protocol import State


def text_frame(text: str) -> bytes:
    """``text`` as the single, unmasked, uncompressed text frame a server sends."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])


def _sansio_ready(p: Any) -> bool:
    return bool(
        p.handshake_complete and not p.close_sent and p.initial_response is None and not p.disconnected
        and p.writable.is_set() and p.conn.state is State.OPEN and not p.conn.extensions
        and not p.transport.is_closing()
    )


def _legacy_ready(p: Any) -> bool:
    return bool(
        p.handshake_completed_event.is_set() and not p.closed_event.is_set() and p.initial_response is None
        and p.state is State.OPEN and not p.extensions and not p._paused
        and p._fragmented_message_waiter is None and not p.transfer_data_task.done()
        and not p.transport.is_closing()
    )


# uvicorn's protocol classes (module, name, the method that is ASGI ``send``) and how each says "ready".
_PROTOCOLS: tuple[tuple[str, str, str, Callable[[Any], bool]], ...] = (
    ("uvicorn.protocols.websockets.websockets_sansio_impl", "WebSocketsSansIOProtocol", "send", _sansio_ready),
    ("uvicorn.protocols.websockets.websockets_impl", "WebSocketProtocol", "asgi_send", _legacy_ready),
)


class FrameWriter:
    """Whole WebSocket frames written to one uvicorn WebSocket connection's transport."""

    __slots__ = ("_protocol", "_ready")

    def __init__(self, protocol: Any, ready: Callable[[Any], bool]) -> None:
        self._protocol, self._ready = protocol, ready

    def ready(self) -> bool:
        """True if a frame written now goes out as the protocol's own would: the connection is
        open, uncompressed, nothing else of it is half sent and its transport is under its
        high-water mark. False: use ``send`` (which waits its turn)."""
        return self._ready(self._protocol)

    def write(self, frame: bytes) -> None:
        """Write ``frame`` (from ``text_frame``); only right after ``ready()`` said True.

        The transport may go over its high-water mark with it: then ``ready()`` is False
        until it drains, as the protocol's own ``send`` would wait."""
        self._protocol.transport.write(frame)


def websocket_writer(send: Send) -> FrameWriter | None:
    """A ``FrameWriter`` for the uvicorn WebSocket connection whose ASGI ``send`` this is, or None."""
    protocol = getattr(send, "__self__", None)
    cls = type(protocol)
    for module, name, method, ready in _PROTOCOLS:
        if cls.__module__ == module and cls.__qualname__ == name and getattr(send, "__func__", None) is getattr(cls, method):
            return FrameWriter(protocol, ready)
    return None
