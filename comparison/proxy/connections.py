"""Client connections and their cutoffs: the part of the proxy that ``idle-timeout`` and ``drop`` use.

aiohttp's low-level ``web.Server`` is told by each connection's protocol when it opens
and closes (``connection_made``/``connection_lost``); this subclass hooks those two calls to
give every client connection one lazy timer. Activity only stores a float (no timer churn
per chunk); when the timer fires it recomputes the deadline and either re-arms or cuts.
Cutting aborts the socket, and ``handler_cancellation`` makes aiohttp cancel the request
being served on it, which closes the upstream side too.

Profiles without cutoffs track nothing: their requests get ``UNTRACKED``, whose methods do nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .classify import TransportClass
from .profiles import Cutoff, Deadline
from .stats import CutReason


class Connection:
    """One client connection that has cutoffs."""

    __slots__ = ("_deadlines", "_now", "last_activity", "opened", "timer", "transport", "transport_class")

    def __init__(
        self,
        transport: asyncio.Transport,
        now: Callable[[], float],
        deadlines: tuple[tuple[CutReason, Deadline], ...],
    ) -> None:
        self.transport = transport
        self._now = now
        self.opened = self.last_activity = now()
        # A connection cut before its first request is counted as "other".
        self.transport_class: TransportClass = "other"
        self.timer: asyncio.TimerHandle | None = None
        self._deadlines = deadlines

    def serving(self, transport_class: TransportClass) -> None:
        """A request arrived on this connection."""
        self.transport_class = transport_class
        self.last_activity = self._now()

    def touch(self) -> None:
        """Bytes crossed the connection, either way."""
        self.last_activity = self._now()

    def next_deadline(self) -> tuple[CutReason, float]:
        return min(((reason, deadline(self)) for reason, deadline in self._deadlines), key=lambda d: d[1])


class Untracked:
    """Stands in for a ``Connection`` when the profile has no cutoffs: nothing to record."""

    __slots__ = ()

    def serving(self, transport_class: TransportClass) -> None:
        pass

    def touch(self) -> None:
        pass


UNTRACKED: Final = Untracked()
EARLY: Final = 0.001  # seconds

OnCut = Callable[[TransportClass, CutReason], None]


class TrackingServer(web.Server):
    """aiohttp's low-level server, plus a cutoff timer on each client connection."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Any],
        *,
        cutoffs: tuple[Cutoff, ...],
        on_cut: OnCut,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self._cutoffs = cutoffs
        self._on_cut = on_cut
        self._tracked: dict[RequestHandler, Connection] = {}

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if not self._cutoffs:
            return
        now = self._loop.time()
        deadlines = tuple((c.reason, c.start(now)) for c in self._cutoffs)
        connection = Connection(transport, self._loop.time, deadlines)
        self._tracked[handler] = connection
        self._arm(connection)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        connection = self._tracked.pop(handler, None)
        if connection is not None and connection.timer is not None:
            connection.timer.cancel()
        super().connection_lost(handler, exc)

    def activity(self, request: web.BaseRequest) -> Connection | Untracked:
        """The record of the connection ``request`` came on, to mark its traffic."""
        if not self._tracked:
            return UNTRACKED
        return self._tracked.get(request.protocol, UNTRACKED)

    @property
    def open_connections(self) -> int:
        return len(self.connections)

    def _arm(self, connection: Connection) -> None:
        _, when = connection.next_deadline()
        connection.timer = self._loop.call_at(when, self._expire, connection)

    def _expire(self, connection: Connection) -> None:
        connection.timer = None
        reason, when = connection.next_deadline()
        # The loop may run a timer up to its clock resolution early: not a reason to re-arm.
        if when - self._loop.time() > EARLY:
            # There was traffic since the timer was set: the deadline moved.
            connection.timer = self._loop.call_at(when, self._expire, connection)
            return
        self._on_cut(connection.transport_class, reason)
        # abort, not close: a proxy that cuts does not wait for buffered bytes to drain.
        connection.transport.abort()
