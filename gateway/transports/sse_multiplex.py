"""One SSE stream for many sessions: the tabs of a browser sharing one connection.

Over HTTP/1.1 a browser opens six connections per host for all the tabs of a profile, and
an event stream holds one for its whole life: a stream per tab leaves nothing for the
seventh tab, nor for anyone's POSTs. rtgateway.js lets the tabs of an origin share one
stream (``gateway/static/rtgateway-shared.js``); this module is the gateway's side.
Wire format: ``docs/protocol.md``, "One stream for many sessions".

- ``GET /sse/multiplex`` opens a *carrier*: an event stream whose first frame, ``carrier``,
  names it (public) and gives its private key, to its own connection only.
- ``POST /sse/multiplex/{carrier}/attach`` opens or resumes a session on it, with exactly the
  parameters of ``GET /sse/connect`` (a resume presents the session's key, in its cursor or in
  ``X-Session-Key``), plus the carrier's key in ``X-Carrier-Key``. ``POST .../detach?sid=``
  takes a session off (both keys again); the session stays recoverable, as after any cut.
- The sessions' requests are the usual ``POST /sse/sessions/{sid}/...``.

To the hub a session on a carrier is one more connection: a ``Lane`` (a ``sessions.Channel``
of transport ``sse-multiplex``). The lanes of a carrier write into its one ``SseChannel``, so
the carrier is written, pinged, bounded in bytes and cut as a slow consumer like any stream;
a carrier lost is each of its sessions' connection lost, and each resumes from its own cursor.
The carrier's key only lets its holder attach sessions whose keys it has: it grants nothing
over a session. A session is on one connection at a time: attached elsewhere (another
carrier, its own stream, Socket.IO), the lane it had gets ``close {replaced}`` as any
connection would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Header, Query
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, Response

from gateway.core.hub import Gateway
from gateway.core.limits import Lease, client_address
from gateway.core.rooms import Room
from gateway.core.sessions import Session, hash_key, key_matches, new_key
from gateway.problems import documented
from gateway.transports.sse import (
    CURSOR_PATTERN,
    EVENT_SCHEMA,
    KEY_HEADER,
    EventStreamResponse,
    SseChannel,
    SseTransport,
    connect_auth,
    resume_from,
)
from gateway.transports.sse import NAME as SSE
from gateway.wire import binary, frames
from gateway.wire.envelope import Envelope, sse_safe
from gateway.wire.errors import NotFound, UnknownSession, ValidationFailed
from gateway.wire.offsets import format_cursor

NAME = "sse-multiplex"
CARRIER_KEY_HEADER = "X-Carrier-Key"
# The frames that move a session's cursor: they carry its "id", as they carry an id: line on its own stream.
_MOVES_CURSOR = frozenset({frames.Open.NAME, frames.Joined.NAME, frames.Left.NAME})
_CLOSE = b"}\n\n"
_CARRIER_KEY = Header(None, alias=CARRIER_KEY_HEADER, description="The carrier's private key, from its carrier frame")
_SESSION_KEY = Header(None, alias=KEY_HEADER, description="The session's private key, from its open frame")


def _tail(wire: bytes) -> bytes:
    """A room event's frame after its session's part: shared by every lane of a broadcast."""
    return wire + _CLOSE


class Lane:
    """One session on a carrier: the ``sessions.Channel`` the hub writes to.

    Each frame is one event of the carrier (no ``event:`` line) whose data wraps the frame
    the session's own stream would carry: ``{"sid", "event", "id"?, "data"}``, ``id`` being the
    session's cursor where its own stream would carry an ``id:`` line.
    """

    transport = NAME
    keeps_trail = False
    __slots__ = ("carrier", "closed", "lease", "session")

    def __init__(self, carrier: Carrier, lease: Lease) -> None:
        self.carrier = carrier
        self.lease = lease  # its place in its address's connection count
        self.session: Session | None = None  # set once the hub has opened or resumed it
        self.closed = False

    def _head(self, session: Session, event: str, moves: bool) -> bytes:
        head = b'data: {"sid":"' + session.sid.encode() + b'","event":"' + event.encode() + b'"'
        if moves:
            # A whole cursor per frame (not SseChannel's cached rest): a carrier serves one
            # browser's few sessions, in few rooms each.
            head += b',"id":"' + format_cursor(session.sid, session.key, session.positions).encode() + b'"'
        return head + b',"data":'

    def deliver(self, session: Session, envelope: Envelope, wire: bytes) -> None:
        self.push(session, envelope, _tail(wire))

    def push(self, session: Session, envelope: Envelope, tail: bytes) -> None:
        """``deliver`` with the broadcast's shared part of the frame already built."""
        if not self.closed:
            session.positions[envelope.room] = envelope.offset
            self.carrier.output.write(self._head(session, envelope.event, True), tail)

    def offer(self, session: Session, event: str, tail: bytes) -> None:
        """A volatile event: no position to move (no ``id``), written only if the carrier is
        ready for it, else dropped and counted (``SseChannel.offer``)."""
        if not self.closed:
            self.carrier.output.offer(self._head(session, event, False) + tail)

    def replay(self, session: Session, envelopes: list[Envelope]) -> None:
        if self.closed or not envelopes:
            return
        framed = []
        for envelope in envelopes:
            session.positions[envelope.room] = envelope.offset
            framed.append(self._head(session, envelope.event, True) + _tail(envelope.encode()))
        # One write, not counted against the byte bound: as a stream's replay (SseChannel.replay).
        self.carrier.output.write(b"".join(framed), counted=False)

    def send(self, event: str, data: Any) -> None:
        session = self.session
        # No session yet: nothing to name the frame by; the hub writes only once it has one.
        if not self.closed and session is not None:
            head = self._head(session, event, event in _MOVES_CURSOR)
            self.carrier.output.write(head + sse_safe(binary.dumps(data)) + _CLOSE)  # a call's bytes: markers

    def call(self, ack_id: str, event: str, data: Any) -> None:
        frame = frames.Call(ack_id, event, data)
        self.send(frame.NAME, frame.encode())

    def close(self, reason: str) -> None:
        """Take the session off the carrier once what it queued is written (``detached`` says so)."""
        if not self.closed:
            self.closed = True
            self.carrier.drop(self, reason)


class Carrier:
    """One multiplexed event stream and the lanes it carries."""

    def __init__(self, gateway: Gateway, streams: SseTransport, transport: MultiplexTransport) -> None:
        self.id = new_key()  # public: it names the carrier in URLs
        key = new_key()  # private: given once, on the carrier's own stream
        self.key_hash = hash_key(key)
        self.lanes: dict[str, Lane] = {}
        self.attaching = 0  # attaches under way: counted against the limit too
        self.output = SseChannel(gateway, streams)
        self._gateway, self._transport = gateway, transport
        self.output.ended.add_done_callback(self._ended)
        s = gateway.settings
        self.output.send("carrier", {
            "carrier": self.id, "key": key, "maxSessions": s.multiplex_max_sessions,
            "pingInterval": int(s.ping_interval * 1000), "pingTimeout": int(s.ping_timeout * 1000),
        })

    def drop(self, lane: Lane, reason: str) -> None:
        """A lane closed: say so on the carrier, give its connection back, let its session go."""
        session = lane.session
        lane.lease.release()
        if session is None or self.lanes.get(session.sid) is not lane:
            return
        del self.lanes[session.sid]
        self.output.send("detached", {"sid": session.sid, "reason": reason})
        # Not at once: the hub closes a replaced connection before it hands the session to the
        # new one (hub._take_over), and a detach now would end the replay under way there.
        # Run later, it detaches only a session that is still this lane's (a token expired).
        asyncio.get_running_loop().call_soon(self._gateway.detach, session, lane, reason)

    def close(self, reason: str) -> None:
        """End the carrier: ``close {reason, reconnect: true}``, then the stream ends."""
        self.output.send(frames.Close.NAME, frames.Close(reason, True).encode())
        self.output.close(reason)

    def forget(self) -> None:
        """No more attaches: the carrier's id names nothing from now on."""
        self._transport.carriers.pop(self.id, None)

    def _ended(self, _: asyncio.Future[None]) -> None:
        """The stream ended, however: every session it carried lost its connection."""
        reason = self.output.cut or "stream closed"
        self.forget()
        lanes, self.lanes = self.lanes, {}
        for lane in lanes.values():
            lane.closed = True
            lane.lease.release()
            if lane.session is not None:
                self._gateway.detach(lane.session, lane, reason)


class CarrierResponse(EventStreamResponse):
    """The carrier's event stream. It carries no session of its own (``SseChannel.session`` is None)."""

    def __init__(self, gateway: Gateway, carrier: Carrier, streams: SseTransport, lease: Lease) -> None:
        super().__init__(gateway, carrier.output, streams, gateway.settings.ping_interval, lease)
        self._carrier = carrier

    def abandon(self) -> None:
        super().abandon()
        self._carrier.forget()  # it never started: nobody learned its id


class MultiplexTransport:
    """Room fan-out to sessions on carriers, and the carriers this node holds."""

    name = NAME

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.carriers: dict[str, Carrier] = {}
        gateway.add_transport(self)

    def broadcast(
        self, room: Room, members: dict[str, Session], envelope: Envelope, wire: bytes, skip: str | None
    ) -> None:
        tail = _tail(wire)
        if envelope.volatile:
            for sid, session in members.items():  # offered, never cut: ``members`` stays as it is
                channel = session.channel
                if sid != skip and isinstance(channel, Lane):
                    channel.offer(session, envelope.event, tail)
            return
        # A copy: a carrier cut as a slow consumer takes its sessions out of ``members`` mid-loop.
        for sid, session in list(members.items()):
            channel = session.channel
            if sid != skip and isinstance(channel, Lane):
                channel.push(session, envelope, tail)

    def find(self, carrier_id: str, key: str | None) -> Carrier:
        """The carrier of this id and key; the same ``not_found`` whichever is wrong."""
        carrier = self.carriers.get(carrier_id)
        if carrier is None or not key_matches(key, carrier.key_hash):
            raise NotFound(f"no carrier {carrier_id[:64]!r} for this key here", carrier=carrier_id[:64])
        return carrier

    def stop(self) -> None:
        """The gateway stops: every carrier is told to come back (the hub's own stop reaches sessions only)."""
        for carrier in list(self.carriers.values()):
            carrier.close("shutdown")

    async def attach(self, carrier: Carrier, request: HttpRequest, namespace: str, auth: dict[str, Any],
                     sid: str | None, key: str | None, positions: dict[str, str] | None) -> Session:
        """Open or resume a session on ``carrier``, then send its open (and replay) there."""
        gateway = self.gateway
        gateway.limits.carrier_session(len(carrier.lanes) + carrier.attaching)
        if sid is not None and sid in carrier.lanes:
            raise ValidationFailed(f"session {sid!r} is already on this carrier: detach it first", field="sid")
        address = client_address(request.scope)
        lane = Lane(carrier, gateway.limits.connection(address))
        carrier.attaching += 1
        try:
            session = await gateway.connect(
                namespace, lane, auth, resume_sid=sid, resume_key=key, positions=positions, address=address,
            )
        except BaseException:
            lane.lease.release()
            raise
        finally:
            carrier.attaching -= 1
        if carrier.output.ended.done() or lane.closed:  # the carrier went, or another attach took the session
            lane.closed = True
            lane.lease.release()
            gateway.detach(session, lane, "stream closed")  # only if it is still this lane's
            raise NotFound(f"carrier {carrier.id!r} closed or the session moved meanwhile", carrier=carrier.id)
        lane.session = session
        carrier.lanes[session.sid] = lane
        gateway.activate(session)  # open (+ replay, recovery) queued on the carrier before the answer
        return session

    def router(self) -> APIRouter:
        """``/sse/multiplex``: open a carrier, attach and detach sessions."""
        gateway, settings = self.gateway, self.gateway.settings
        streams = gateway.transports[SSE]
        assert isinstance(streams, SseTransport), "mount the SSE router first"
        api = APIRouter(prefix="/sse/multiplex", tags=["SSE + POST"])

        @api.get(
            "",
            response_class=CarrierResponse,
            status_code=200,
            responses={
                200: {"content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
                      "description": "The carrier: its own frames, and those of the sessions attached to it"},
                **documented(403, 429),
            },
            summary="Open an event stream that carries the frames of several sessions",
            # An answer that never ends, with no parameter to make it end (GET /sse/connect has
            # mode=poll): left out of the document that API testers walk; docs/protocol.md has it.
            include_in_schema=False,
        )
        async def open_carrier(request: HttpRequest) -> CarrierResponse:
            lease = gateway.limits.connection(client_address(request.scope))
            opened = Carrier(gateway, streams, self)
            self.carriers[opened.id] = opened
            return CarrierResponse(gateway, opened, streams, lease)

        @api.post(
            "/{carrier}/attach",
            responses=documented(400, 401, 403, 404, 410, 422, 429, 503),
            summary="Open or resume a session on a carrier (the parameters of GET /sse/connect)",
        )
        async def attach(
            carrier: str,
            request: HttpRequest,
            namespace: str = Query("/", description="Namespace to connect to, e.g. /chat"),
            token: str | None = Query(None, description="Credential; prefer Authorization: Bearer"),
            sid: str | None = Query(None, description=f"Session to resume (with its key in {KEY_HEADER})"),
            key: str | None = _SESSION_KEY,
            last_event_id_query: str | None = Query(
                None, alias="lastEventId", description="Resume cursor", json_schema_extra={"pattern": CURSOR_PATTERN},
            ),
            last_event_id: str | None = Header(
                None, alias="Last-Event-ID", description="Resume cursor: the session's last id",
                json_schema_extra={"pattern": CURSOR_PATTERN},
            ),
            authorization: str | None = Header(None),
            carrier_key: str | None = _CARRIER_KEY,
        ) -> JSONResponse:
            host = self.find(carrier, carrier_key)
            cursor = last_event_id or last_event_id_query
            sid, key, positions = resume_from(cursor, sid, key, settings.max_rooms_per_session)
            auth = connect_auth(request, token, authorization)
            session = await self.attach(host, request, namespace, auth, sid, key, positions)
            return JSONResponse({"ok": True, "result": {"sid": session.sid}})

        @api.post(
            "/{carrier}/detach",
            status_code=204,
            responses=documented(404, 422),
            summary="Take a session off a carrier; it stays recoverable",
        )
        async def detach(
            carrier: str,
            sid: str = Query(description="The session to take off"),
            key: str | None = _SESSION_KEY,
            carrier_key: str | None = _CARRIER_KEY,
        ) -> Response:
            host = self.find(carrier, carrier_key)
            lane = host.lanes.get(sid)
            session = lane.session if lane is not None else None
            if lane is None or session is None or not key_matches(key, session.key_hash):
                raise UnknownSession(f"no session {sid!r} for this key on this carrier", sid=sid)
            lane.close("detached")
            return Response(status_code=204)

        return api
