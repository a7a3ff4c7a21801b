"""Every python-engineio internal rtclient reaches into, in one place (tested with 4.x).

python-engineio has no public way to do these, and rtclient needs them:

- ``Payload.max_decode_packets`` (class attribute): a polling response of more packets than
  this (16) is refused; a resume's replay is often more. ``allow_long_payloads`` raises it.
- ``eio.current_transport``, ``eio.ws``, ``eio.http``, ``eio.state``, ``eio.read_loop_task``,
  ``eio.write_loop_task``: ``abandon`` / ``abandon_blocking`` lose a connection without a
  goodbye packet, as a network failure would (tests and the reconnect path need that);
  ``goodbye`` says goodbye over polling without waiting for the long-poll in flight. Every
  step of either is bounded (``rtclient._bounds``): a dead peer cannot hold the caller.
- ``eio._trigger_event``, ``eio.handlers``: the blocking client hands each Socket.IO message
  to its handler in arrival order (``rtclient.blocking._InOrder``) by wrapping the trigger.

tests/test_client_imports.py::test_the_engineio_internals_rtclient_uses_exist fails if a
version renames any of them. python-engineio is imported here only when called: importing
``rtclient`` loads no Socket.IO library.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._bounds import CLOSE_BOUND, bounded, bounded_blocking, let_go, reap
from .protocol import Stats

if TYPE_CHECKING:
    import socketio

ABANDON_ATTRIBUTES = ("current_transport", "ws", "http", "state", "read_loop_task", "write_loop_task")
TRIGGER_ATTRIBUTES = ("_trigger_event", "handlers", "start_background_task")

MAX_DECODE_PACKETS = 4096


def allow_long_payloads(packets: int = MAX_DECODE_PACKETS) -> None:
    """Let a polling response carry at least ``packets`` packets (process-wide, only raised)."""
    from engineio.payload import Payload

    Payload.max_decode_packets = max(Payload.max_decode_packets, packets)


async def abandon(sio: socketio.AsyncClient, stats: Stats | None = None, within: float = CLOSE_BOUND) -> None:
    """Lose a python-socketio connection without a goodbye packet, as a network failure would.

    Polling has no socket to close: the client just stops talking, and the server
    notices after ``pingInterval + pingTimeout``. Each step (the WebSocket's close handshake,
    closing the aiohttp session, ending the read and write loops) is given at most ``within``
    s, then left behind and counted in ``stats.abandoned``. The aiohttp session is closed on
    either transport (python-engineio closes it only in its own ``disconnect``).
    """
    eio, stats = sio.eio, stats or Stats()
    if eio.current_transport == "websocket" and eio.ws is not None:
        await bounded(eio.ws.close(), within, "closing a WebSocket", stats)
    else:
        eio.state = "disconnected"
    if eio.http is not None and not eio.http.closed:
        await bounded(eio.http.close(), within, "closing an aiohttp session", stats)
    for task in (eio.read_loop_task, eio.write_loop_task):
        await reap(task, within, "a python-engineio loop", stats)


async def goodbye(sio: socketio.AsyncClient, stats: Stats | None = None, within: float = CLOSE_BOUND) -> None:
    """``sio.disconnect()``, bounded, and over polling without waiting for the long-poll in flight.

    python-engineio's ``disconnect`` returns only once its pending GET ends, and the server
    answers that GET at its next ping (``pingInterval`` later). A browser aborts its XHR
    instead; this does the same once the goodbye has gone: the write loop ends after its last
    POST (the DISCONNECT and CLOSE packets), then closing the HTTP session cuts the GET, and
    the read loop ends at once. Whatever is left after ``within`` s a step is let go of as
    ``abandon`` does (counted in ``stats.abandoned``).
    """
    eio, stats = sio.eio, stats or Stats()
    if eio.current_transport != "polling":
        await bounded(sio.disconnect(), within, "disconnecting", stats)
    else:
        writer = eio.write_loop_task
        disconnecting = asyncio.ensure_future(sio.disconnect())
        try:
            if writer is not None:
                await asyncio.wait({writer}, timeout=within)  # the goodbye packets have gone
            if eio.http is not None and not eio.http.closed:
                await bounded(eio.http.close(), within, "closing an aiohttp session", stats)
        except asyncio.CancelledError:
            let_go(disconnecting)
            raise
        await bounded(disconnecting, within, "disconnecting", stats)
    await abandon(sio, stats, within)  # what the disconnect left open, if anything


def abandon_blocking(sio: socketio.Client, stats: Stats | None = None, within: float = CLOSE_BOUND) -> None:
    """``abandon`` for the threaded client (its loops are threads, which end on their own)."""
    eio, stats = sio.eio, stats or Stats()
    if eio.current_transport == "websocket" and eio.ws is not None:
        bounded_blocking(eio.ws.close, within, "closing a WebSocket", stats)
    else:
        eio.state = "disconnected"
        if eio.http is not None:
            bounded_blocking(eio.http.close, within, "closing an HTTP session", stats)


def goodbye_blocking(sio: socketio.Client, stats: Stats | None = None, within: float = CLOSE_BOUND) -> None:
    """``sio.disconnect()`` for the threaded client, bounded (then let go of as ``abandon_blocking``)."""
    stats = stats or Stats()
    bounded_blocking(sio.disconnect, within, "disconnecting", stats)
    abandon_blocking(sio, stats, within)


Trigger = Callable[..., Any]


def event_trigger(eio: Any) -> tuple[Trigger, dict[str, Callable[..., Any]]] | None:
    """The engine.io client's event trigger and its handlers, or None if this version has neither."""
    trigger, handlers = getattr(eio, "_trigger_event", None), getattr(eio, "handlers", None)
    if trigger is None or not isinstance(handlers, dict):
        return None
    return trigger, handlers


def replace_event_trigger(eio: Any, trigger: Trigger) -> None:
    """Route every engine.io event of ``eio`` through ``trigger`` (see ``event_trigger``)."""
    eio._trigger_event = trigger
