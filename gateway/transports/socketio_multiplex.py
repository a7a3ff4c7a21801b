"""One long-poll for many Socket.IO polling connections: the tabs of a browser sharing one.

Over HTTP/1.1 a browser opens six connections per host for all the tabs of a profile, and
a long-poll holds one while it waits: past five polling tabs, nothing is left for anyone's
POSTs until a ping ends a poll. rtgateway.js lets the tabs of an origin share one long-poll
(``gateway/static/rtgateway-shared.js``, the ``socketio-polling`` transport); this module is
the gateway's side. Wire format: ``docs/protocol.md``, "One long-poll for many Socket.IO
connections".

Each tab still makes its own Engine.IO handshake and sends its own (short) POSTs on
``/socket.io/``, so its Socket.IO session, acks and connection-state recovery are its own;
only the waiting is shared:

- ``GET /sio/multiplex?hold=H&s=SID.N&s=...`` waits until one of the Engine.IO connections
  ``SID`` has packets, then answers with what each has queued: ``{"payloads": {SID: {"n", "data"}},
  "gone": [SID]}``, ``data`` being the body the connection's own poll would have had. ``N`` is
  how many answers of that connection the caller has had from here: one behind, the last one
  is sent again (the answer that carried it was lost, say with a tab that closed holding it).
- ``POST /sio/multiplex/wake?hold=H``: the poll ``H`` answers now (a tab joined the share).

The Engine.IO sid is the credential, as on ``/socket.io/?sid=``: it is known to its
connection only (Socket.IO sids, which rooms may show, are other ids). A connection is
waited on by one shared poll at a time: a newer poll naming it takes it over.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from fastapi import APIRouter, Query
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, Response

from gateway.core.hub import Gateway
from gateway.core.limits import client_address
from gateway.fences.engineio_server import (
    EngineSocket,
    more_packets,
    next_packet,
    open_socket,
    packet_size,
    polling,
    polling_payload,
)
from gateway.problems import documented
from gateway.transports.socketio_server import SocketIOTransport
from gateway.wire.errors import NotFound, ValidationFailed

# "SID.N": an Engine.IO sid (python-engineio's are base64url, 20 characters) and a count.
_NAMED = re.compile(r"([A-Za-z0-9_-]{1,64})\.(\d{1,12})")
_HOLD = re.compile(r"[A-Za-z0-9_-]{8,64}")
_CONNECTIONS = Query(description="Each connection as ENGINE_IO_SID.ANSWERS_RECEIVED (repeat s= for each)")


@dataclass
class _Sent:
    """The last answer given for one connection, kept until the next poll says it arrived."""

    n: int
    data: str


@dataclass
class _Hold:
    """A parked shared poll."""

    left: Callable[[], Awaitable[None]]  # returns once its client has disconnected
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    gone: bool = False  # its client left: it takes nothing


class PollMultiplexer:
    """The shared long-polls of this node, over the Socket.IO transport's Engine.IO sockets."""

    def __init__(self, gateway: Gateway, transport: SocketIOTransport) -> None:
        self.gateway = gateway
        self.transport = transport
        self.server = transport.server
        self.sent: dict[str, _Sent] = {}  # eio sid -> its last answer (bounded: one per open socket)
        self._holders: dict[str, _Hold] = {}  # eio sid -> the poll waiting on it
        self._holds: dict[str, _Hold] = {}  # hold id -> that poll
        self._swept_at = 64

    async def poll(self, hold_id: str, named: dict[str, int], left: Callable[[], Awaitable[None]]) -> dict[str, Any]:
        """Wait for packets of any of ``named`` (eio sid -> answers received); the answer body.
        ``left`` returns once the client has gone: the poll then ends and takes nothing."""
        if hold_id in self._holds:
            raise ValidationFailed(f"poll {hold_id!r} is already waiting: one poll per hold id", field="hold")
        hold = _Hold(left)
        self._holds[hold_id] = hold
        metrics = self.gateway.metrics
        metrics.shared_polls.inc()
        metrics.shared_poll_connections.inc(len(named))
        try:
            for sid in named:  # a connection is waited on by one poll: the newest
                if (older := self._holders.get(sid)) is not None:
                    older.wake.set()
                    await older.done.wait()
                self._holders[sid] = hold
            return await self._answer(hold, named)
        finally:
            for sid in named:
                if self._holders.get(sid) is hold:
                    del self._holders[sid]
            del self._holds[hold_id]
            metrics.shared_polls.dec()
            metrics.shared_poll_connections.dec(len(named))
            hold.done.set()

    def wake(self, hold_id: str) -> None:
        """Make the poll ``hold_id`` answer now."""
        hold = self._holds.get(hold_id)
        if hold is None:
            raise NotFound(f"no poll {hold_id[:64]!r} is waiting here", hold=hold_id[:64])
        hold.wake.set()

    async def _answer(self, hold: _Hold, named: dict[str, int]) -> dict[str, Any]:
        payloads: dict[str, dict[str, Any]] = {}
        gone: list[str] = []
        sockets: dict[str, EngineSocket] = {}
        for sid, received in named.items():
            socket = open_socket(self.server, sid)
            if socket is not None and not polling(socket):
                socket = None  # on a WebSocket (or moving to one): its packets are its writer's
            sent = self.sent.get(sid)
            # A count it was never given, or one behind an answer already said to have arrived.
            valid = received == 0 if sent is None else received == sent.n or (received == sent.n - 1 and sent.data != "")
            if socket is None or not valid:
                gone.append(sid)  # closed, or a count that was never given: start over on a new connection
                self._forget(sid)
            elif sent is not None and received == sent.n - 1:
                payloads[sid] = {"n": sent.n, "data": sent.data}  # the answer that carried it was lost
            else:
                if sent is not None and sent.data:  # the poll says it arrived: only its count is needed now
                    self._forget(sid)
                    self.sent[sid] = _Sent(sent.n, "")
                sockets[sid] = socket
        first = await self._first(hold, sockets) if not payloads and not gone else {}
        if hold.gone:  # nobody to answer: it drains nothing more, and what it took is the next poll's resend
            sockets = {sid: sockets[sid] for sid in first}
        budget = self.gateway.settings.max_payload
        for sid, socket in sockets.items():
            packets = [first[sid]] if first.get(sid) is not None else []
            closed = sid in first and first[sid] is None
            if not closed:
                more, closed = more_packets(socket, budget)
                packets += more
            if packets:
                budget -= sum(packet_size(p) for p in packets)
                done = self._forget(sid)
                sent = self.sent[sid] = _Sent((done.n if done else 0) + 1, polling_payload(packets))
                self.transport.resend_bytes += len(sent.data)
                payloads[sid] = {"n": sent.n, "data": sent.data}
            elif closed:
                gone.append(sid)
                self._forget(sid)
        self._sweep()
        return {"payloads": payloads, "gone": gone}

    async def _first(self, hold: _Hold, sockets: dict[str, EngineSocket]) -> dict[str, Any]:
        """Wait until a socket has a packet, the poll is woken, its client leaves, or pingInterval
        passes. The packets taken (None: that socket closed), by sid."""
        waits = {sid: asyncio.ensure_future(next_packet(socket)) for sid, socket in sockets.items()}
        woken = asyncio.ensure_future(hold.wake.wait())
        left = asyncio.ensure_future(hold.left())
        try:
            await asyncio.wait([*waits.values(), woken, left], timeout=self.gateway.settings.ping_interval,
                               return_when=asyncio.FIRST_COMPLETED)
            hold.gone = left.done() and not left.cancelled() and left.exception() is None
        finally:
            for task in (*waits.values(), woken, left):
                task.cancel()
            # A wait cancelled before it had a packet took none; one that had it keeps it.
            await asyncio.gather(*waits.values(), woken, left, return_exceptions=True)
        return {sid: task.result() for sid, task in waits.items() if not task.cancelled() and task.exception() is None}

    def _sweep(self) -> None:
        """Forget the answers of sockets that are gone (amortised: when the map has doubled)."""
        if len(self.sent) < self._swept_at:
            return
        for sid in [sid for sid in self.sent if open_socket(self.server, sid) is None]:
            self._forget(sid)
        self._swept_at = max(64, 2 * len(self.sent))

    def _forget(self, sid: str) -> _Sent | None:
        """Drop the answer kept for ``sid`` (and its bytes from the held output); it, if any."""
        sent = self.sent.pop(sid, None)
        if sent is not None:
            self.transport.resend_bytes -= len(sent.data)
        return sent

    def router(self) -> APIRouter:
        """``/sio/multiplex``: the shared long-poll and its wake-up."""
        gateway = self.gateway
        api = APIRouter(prefix="/sio/multiplex", tags=["Socket.IO"])

        @api.get(
            "",
            responses=documented(403, 422, 429),
            summary="Wait for the packets of several Socket.IO long-polling connections at once",
        )
        async def shared_poll(
            request: HttpRequest,
            hold: str = Query(description="This poll's id (random, 8-64 of A-Z a-z 0-9 _ -): wake names it",
                              pattern=_HOLD.pattern),
            s: list[str] = _CONNECTIONS,
        ) -> JSONResponse:
            limit = gateway.settings.multiplex_max_sessions
            if not s or (limit and len(s) > limit):
                raise ValidationFailed(f"name 1 to {limit or 'any number of'} connections", field="s")
            named: dict[str, int] = {}
            for item in s:
                match = _NAMED.fullmatch(item)
                if match is None:
                    raise ValidationFailed(f"{item[:80]!r} is not ENGINE_IO_SID.ANSWERS_RECEIVED", field="s")
                named[match[1]] = int(match[2])
            lease = gateway.limits.connection(client_address(request.scope))  # held like any long-poll
            try:
                return JSONResponse(await self.poll(hold, named, partial(_disconnected, request)),
                                    headers={"Cache-Control": "no-store"})
            finally:
                lease.release()

        @api.post("/wake", status_code=204, responses=documented(404, 422),
                  summary="Make a waiting shared poll answer now")
        async def wake(hold: str = Query(description="The poll's id", pattern=_HOLD.pattern)) -> Response:
            self.wake(hold)
            return Response(status_code=204)

        return api


async def _disconnected(request: HttpRequest) -> None:
    """Return once the client of ``request`` (a GET: no body to read) has disconnected."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
