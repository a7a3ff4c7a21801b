"""The hub: sessions, namespaces, rooms, acknowledgements and the delivery log, tied together.

It knows no transport. Transports call ``connect``/``activate``/``detach`` and the
request methods; the hub writes back through each session's ``Channel`` and fans
room events out through each transport's ``broadcast``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.brokers.base import Broker, Command, Dedup, Publication
from gateway.brokers.memory import MemoryBroker
from gateway.core.acks import AckRegistry
from gateway.core.budget import HeldBytes, collect_young
from gateway.core.dedup import Deduplicator
from gateway.core.delivery_log import Replay
from gateway.core.jwt_auth import JwtAuth
from gateway.core.limits import Limits
from gateway.core.namespaces import Namespace
from gateway.core.presence import PresenceTracker
from gateway.core.rooms import Rooms
from gateway.core.sessions import (
    Channel,
    Session,
    SessionRecord,
    SessionState,
    Trail,
    hash_key,
    key_matches,
    new_key,
    public_id,
)
from gateway.core.transport import Transport
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.wire import frames
from gateway.wire.envelope import Envelope, check_data, check_name, server_event
from gateway.wire.errors import (
    AckTimeout,
    ForbiddenRoom,
    GatewayError,
    NotJoined,
    SessionClosed,
    SessionExpired,
    TokenExpired,
    TooManyRooms,
    Unauthorized,
    UnknownEvent,
    UnknownNamespace,
    UnknownSession,
    ValidationFailed,
)
from gateway.wire.offsets import parse_offset
from gateway.wire.requests import Ack, Close, Emit, Join, Leave, Presence, Publish, Request, decode_request

log = logging.getLogger("gateway")

# Every session of a namespace is in this room: namespace-wide emits are logged and replayed too.
ALL = "*"
# The routed command that asks the node holding a session where its Socket.IO client resumes.
TRAIL_OP = "trail"
# The routed command that tells the node holding a session that another node takes it over.
RELEASE_OP = "release"

Gaps = tuple[tuple[str, str | None], ...]


@dataclass(slots=True)
class _Resume:
    replays: dict[str, Replay]
    lost: Gaps = ()  # a new session that replaces one whose recovery the log could not fill


@dataclass(frozen=True, slots=True)
class Recover:
    """Socket.IO connection-state recovery, as the official client asks for it in its CONNECT
    auth: ``pid`` (the session's private key) and ``offset`` (the trailing string of the last
    event it received, None if none)."""

    pid: str
    last: str | None


class _Unfillable(Exception):
    """The log no longer holds everything after the client's positions (these rooms)."""

    def __init__(self, gaps: Gaps) -> None:
        super().__init__("gaps")
        self.gaps = gaps


class Gateway:
    """One gateway node. Declare namespaces on it, then mount transports over it."""

    def __init__(self, settings: Settings | None = None, broker: Broker | None = None) -> None:
        self.settings = settings or Settings()
        self.broker: Broker = broker or make_broker(self.settings)
        self.namespaces: dict[str, Namespace] = {}
        self.transports: dict[str, Transport] = {}
        self.rooms = Rooms()
        self.sessions: dict[str, Session] = {}
        self.acks = AckRegistry()
        self.metrics = Metrics()
        self.limits = Limits(self.settings, self.metrics)
        self._replaying: dict[str, set[Session]] = {}
        self._resumes: dict[str, _Resume] = {}
        # A take-over across nodes: sessions arriving here (their routed requests wait for the
        # move), and sessions that left for another node in the last ``route_timeout`` seconds
        # (requests that still reach this node go there).
        self._arriving: dict[str, asyncio.Event] = {}
        self._moved: dict[str, str] = {}
        self.dedup = Deduplicator(self.broker, self.settings.dedup_window, self.metrics)
        self._presence = PresenceTracker(self.broker, self.settings, self.metrics, self.namespaces)
        self.metrics.registry.register(HeldBytes(self))  # gateway_held_bytes, read when scraped
        self.jwt: JwtAuth | None = JwtAuth.from_settings(self.settings)
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self.closing = False

    # -- declaration ---------------------------------------------------------

    def namespace(self, name: str, **options: Any) -> Namespace:
        """Get or create a namespace."""
        ns = self.namespaces.get(name)
        if ns is None:
            ns = self.namespaces[name] = Namespace(name, **options)
        return ns

    def add_transport(self, transport: Transport) -> None:
        self.transports[transport.name] = transport

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start(self._fanout, self._command, self._fanout_gap)
        await self._presence.start()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="gateway-sweeper")

    async def stop(self) -> None:
        """Tell every client to reconnect (not a reset), then release the broker."""
        self.closing = True
        for session in list(self.sessions.values()):
            if session.channel is not None:
                _send_away(session.channel, "shutdown", reconnect=True)
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self._presence.stop()
        await self.broker.close()

    @property
    def ready(self) -> bool:
        return self.broker.ready and not self.closing

    # -- connections ---------------------------------------------------------

    async def connect(
        self,
        namespace: str,
        channel: Channel,
        auth: dict[str, Any],
        *,
        resume_sid: str | None = None,
        resume_key: str | None = None,
        positions: dict[str, str] | None = None,
        address: str | None = None,
        recover: Recover | None = None,
    ) -> Session:
        """Authenticate and open (or resume) a session; call ``activate`` once the channel can write.

        Resuming takes the session's private key (``resume_key``): without the right
        one the answer is the same as for a session that never existed. Raises a
        ``GatewayError`` and changes nothing if anything is wrong. ``address`` is the
        client's (``limits.client_address``): new sessions are limited per address.

        ``recover`` (a namespace where ``recovers``): the session of that key, resumed
        exactly after the client's last event; if it cannot be (unknown key, a last event
        that cannot be placed, a gap in the log), a new session, whose ``recovery`` frame
        names the gaps if there were any. Never an error saying which.
        """
        resuming = resume_sid is not None or recover is not None
        sid = resume_sid if recover is None else public_id(recover.pid)
        if sid not in self.sessions:  # one more session on this node
            self.limits.open_session(address, len(self.sessions), fresh=not resuming)
        ns = self.namespaces.get(namespace)
        if ns is None:
            raise UnknownNamespace(f"no namespace {namespace[:64]!r}", namespace=namespace[:64])
        _check_auth(auth, self.settings.max_auth_bytes)
        skip = recover is not None and ns.recovery_skips_middleware
        fresh = None if skip else await self._authenticate(ns, channel, auth)
        if recover is not None:
            outcome = await self._recover(ns, fresh, channel, recover)
            if isinstance(outcome, Session):
                return outcome
            # Not recovered: a new session after all, limited as any.
            self.limits.open_session(address, len(self.sessions), fresh=True)
            return await self._open(fresh or await self._authenticate(ns, channel, auth), channel, outcome)
        assert fresh is not None  # only a recovery skips the middleware
        if resume_sid is None:
            return await self._open(fresh, channel)
        return await self._resume(resume_sid, resume_key, fresh, channel, positions or {})

    async def _authenticate(self, ns: Namespace, channel: Channel, auth: dict[str, Any]) -> Session:
        """A new session (with its key, and the public id derived from it) through the
        JWT check and the namespace's middleware."""
        key = new_key()
        fresh = Session(sid=public_id(key), namespace=ns.name, key=key, transport=channel.transport)
        if self.jwt is not None:
            token = auth.get("token")
            if token is not None:
                claims = self.jwt.verify(token)
                fresh.user, fresh.claims = claims["sub"], dict(claims)
                fresh.expires_at = float(claims["exp"])
            elif not ns.anonymous:
                raise Unauthorized(f"{ns.name} needs a token (a JWT in auth.token or Authorization: Bearer)")
        for middleware in ns.middleware:
            await middleware(fresh, auth)
        return fresh

    def recovers(self, namespace: str) -> bool:
        """Whether Socket.IO connection-state recovery is on for ``namespace``."""
        ns = self.namespaces.get(namespace)
        if ns is None:
            return False
        return self.settings.socketio_recovery if ns.recovery is None else ns.recovery

    def _trail(self, session: Session, channel: Channel, start: dict[str, str]) -> Trail | None:
        """A trail for a connection whose client recovers from it: none for a channel that
        resumes by cursor (SSE), which would hold an empty one for its whole life."""
        if channel.keeps_trail and self.recovers(session.namespace):
            return Trail(start, self.settings.socketio_recovery_trail)
        return None

    async def _open(self, session: Session, channel: Channel, lost: Gaps = ()) -> Session:
        session.key_hash = hash_key(session.key)
        session.channel = channel
        # Buffering from before the position reads: with an asynchronous fan-out (Redis)
        # an event logged just after a read is then held, not missed.
        session.rooms = dict.fromkeys((session.sid, ALL), "")
        self._begin_replay(session)
        self.sessions[session.sid] = session
        try:
            for room in (session.sid, ALL):
                session.rooms[room] = await self.broker.position(session.namespace, room)
            session.positions = dict(session.rooms)
            await self.broker.save_session(session.record(self.broker.node), self._session_ttl)
        except BaseException:
            self._end_replay(session)  # nothing stays behind a refused connect
            self.sessions.pop(session.sid, None)
            raise
        session.trail = self._trail(session, channel, session.positions)
        self._resumes[session.sid] = _Resume({}, lost)
        self.metrics.connects.labels(channel.transport, "no").inc()
        return session

    async def _resume(
        self, sid: str, key: str | None, fresh: Session, channel: Channel, positions: dict[str, str]
    ) -> Session:
        session, node = await self._find(sid, key)
        if session.namespace != fresh.namespace or session.user != fresh.user:
            # Same answer as a sid that never existed: a sid is not proof of identity.
            raise UnknownSession(f"no session {sid!r} for this namespace and user", sid=sid)
        return await self._take_over(session, node, key, fresh, channel, positions, exact=False)

    async def _recover(
        self, ns: Namespace, fresh: Session | None, channel: Channel, recover: Recover
    ) -> Session | Gaps:
        """Socket.IO recovery: the session of ``recover.pid`` resumed exactly, or the gaps
        (maybe none) that make it a new session; the old one then ends, as its client lets
        go of it. ``fresh`` None: the namespace keeps a recovered session's credentials."""
        try:
            session, node = await self._find(public_id(recover.pid), recover.pid)
        except (UnknownSession, SessionExpired):
            return ()  # as for a key that never existed: a new session, nothing said
        credentials = fresh or session
        if session.namespace != ns.name or session.user != credentials.user:
            return ()
        positions = await self._trail_positions(session, node, recover.last)
        gaps: Gaps = ()
        if positions is not None:
            try:
                return await self._take_over(session, node, recover.pid, credentials, channel, positions, exact=True)
            except _Unfillable as unfillable:
                gaps = unfillable.gaps
        if node == self.broker.node:
            self.close(session, "not recovered")
        else:
            self._background(self._close_elsewhere(node, session.sid))
        return gaps

    async def _trail_positions(self, session: Session, node: str, last: str | None) -> dict[str, str] | None:
        """Where each room resumes for a client whose last string is ``last``, asked of the node
        that wrote to its connection (``Trail``); None if it cannot be known exactly."""
        if node == self.broker.node:
            return session.trail.positions(last) if session.trail is not None else None
        try:
            found = await self.broker.route(
                node, Command(TRAIL_OP, session.sid, {"last": last}), self.settings.route_timeout
            )
        except GatewayError:
            return None  # that node is gone, and its trail with it
        if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
            return None
        return found

    async def _close_elsewhere(self, node: str, sid: str) -> None:
        try:
            await self.broker.route(node, Command(Close.OP, sid, Close().encode()), self.settings.route_timeout)
        except GatewayError:
            pass  # gone with its node, or expiring there

    async def _take_over(
        self, session: Session, node: str, key: str | None, credentials: Session, channel: Channel,
        positions: dict[str, str], *, exact: bool,
    ) -> Session:
        """Move ``session`` (held by ``node``) onto ``channel`` from ``positions``. ``exact``: raise
        ``_Unfillable`` rather than resume with a gap (Socket.IO recovery), changing nothing here."""
        if node == self.broker.node:
            return await self._take_over_here(session, key, credentials, channel, positions, exact=exact)
        # Another node holds it (its connection may still be open, an auto client moving):
        # that node lets go first and hands over the rooms it last knew; the requests that
        # still reach it are routed here and wait until the move is done.
        sid = session.sid
        arrived = self._arriving[sid] = asyncio.Event()
        try:
            try:
                rooms = await self.broker.route(
                    node, Command(RELEASE_OP, sid, {"to": self.broker.node}), self.settings.route_timeout
                )
            except GatewayError:
                rooms = None  # that node is gone (or never had it): the record is all there is
            if isinstance(rooms, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in rooms.items()):
                session.rooms = rooms
            return await self._take_over_here(session, key, credentials, channel, positions, exact=exact)
        finally:
            arrived.set()
            if self._arriving.get(sid) is arrived:
                del self._arriving[sid]

    def _let_go(self, sid: str, to: Any) -> dict[str, str] | None:
        """Node ``to`` takes ``sid`` over: stop serving it here, its connection told ``replaced``,
        and answer with its rooms as this node knows them (None: not held here)."""
        session = self.sessions.get(sid)
        if session is None or not isinstance(to, str) or not to or to == self.broker.node:
            return None
        channel = session.channel if session.state is SessionState.CONNECTED else None
        rooms = dict(session.rooms)
        self._forget(session)  # no record write: the record is the new node's now
        self._moved[sid] = to
        asyncio.get_running_loop().call_later(self.settings.route_timeout, self._moved.pop, sid, None)
        if channel is not None:
            _send_away(channel, "replaced", reconnect=False)
        return rooms

    async def _take_over_here(
        self, session: Session, key: str | None, credentials: Session, channel: Channel,
        positions: dict[str, str], *, exact: bool,
    ) -> Session:
        sid = session.sid
        # Until the log is read the session stays on its previous connection, if it has one, so
        # that a failed resume leaves it there. That connection may end meanwhile (a long-poll
        # the gateway finds gone only at its ping timeout, say): the events held since
        # ``_begin_replay`` are not in what is read, and stay held for this one (``detach``).
        self._begin_replay(session)
        session.taking_over = channel
        try:
            start = {room: positions.get(room, joined) for room, joined in session.rooms.items()}
            replays = {
                room: await self.broker.replay(session.namespace, room, after)
                for room, after in start.items()
            }
            if session.taking_over is not channel:
                # A newer resume of the session began meanwhile (this one's client gave up
                # waiting, say): the newest wins. The events held since are its own.
                raise SessionClosed(f"session {sid!r} is being resumed on a newer connection", sid=sid)
            gaps = tuple((room, start[room]) for room, replay in replays.items() if not replay.complete)
            if exact and gaps:
                raise _Unfillable(gaps)
        except (GatewayError, _Unfillable):
            if session.taking_over is channel:
                self._go_live(session)  # live again on its previous connection, if that is still there
            raise
        finally:
            if session.taking_over is channel:
                session.taking_over = None
        previous = session.channel if session.state is SessionState.CONNECTED else None
        if previous is not None:
            # The owner (it holds the key) came back on another connection: the old one
            # is told not to fight for the session, then ended.
            self._stop_expiry(session)
            _send_away(previous, "replaced", reconnect=False)
        session.state = SessionState.CONNECTED
        session.channel = channel
        session.transport = channel.transport
        session.key = key or session.key
        session.claims = credentials.claims
        session.expires_at = credentials.expires_at
        session.positions = {room: start[room] for room in session.rooms}
        session.trail = self._trail(session, channel, session.positions)
        self.sessions[sid] = session
        self._resumes[sid] = _Resume(replays)
        try:
            await self.broker.save_session(session.record(self.broker.node), self._session_ttl, take=True)
        except BaseException:
            self.detach(session, channel, "broker unavailable")  # recoverable, as before the attempt
            raise
        if session.channel is not channel:
            # A newer resume took the session over while the record was saved (this connection
            # was told ``replaced``): the transport must not activate the newer one's.
            raise SessionClosed(f"session {sid!r} was resumed on a newer connection", sid=sid)
        self.metrics.connects.labels(channel.transport, "yes").inc()
        return session

    def activate(self, session: Session) -> None:
        """Send ``open``, the replay and ``recovery``, then go live. Synchronous, so no event slips between."""
        channel = session.channel
        resume = self._resumes.pop(session.sid, None)
        if channel is None or resume is None:
            return
        if session.taking_over is not None:
            # A newer resume of the session began since this one's: it wins, and the events
            # held meanwhile are its own, so this connection must not go live.
            self.detach(session, channel, "replaced")
            _send_away(channel, "replaced", reconnect=False)
            return
        self._start_expiry(session, channel)
        _send(channel, self.handshake(session))
        if session.state is SessionState.CONNECTED and resume.replays:
            missed: list[Envelope] = []
            gaps: list[tuple[str, str | None]] = []
            for room, replay in resume.replays.items():
                # its own events stay out unless it asked for them, as in the live fan-out
                missed += [e for e in replay.events if e.sender != session.sid or e.echo]
                if not replay.complete:
                    gaps.append((room, session.positions.get(room)))
            # One write: a long replay is not a slow consumer.
            channel.replay(session, missed)
            replayed = len(missed)
            if session.channel is not channel:
                return  # the connection failed under the replay; the session resumes again
            self.metrics.replayed.inc(replayed)
            self.metrics.gaps.inc(len(gaps))
            _send(channel, frames.Recovery(recovered=True, complete=not gaps, replayed=replayed, gaps=tuple(gaps)))
        elif resume.lost:
            _send(channel, frames.Recovery(recovered=False, complete=False, replayed=0, gaps=resume.lost))
        self._go_live(session)

    def handshake(self, session: Session) -> frames.Open:
        """The session's ``open`` frame."""
        s = self.settings
        return frames.Open(
            sid=session.sid,
            key=session.key,  # only ever sent on the session's own connection
            namespace=session.namespace,
            ping_interval=int(s.ping_interval * 1000),
            ping_timeout=int(s.ping_timeout * 1000),
            max_payload=s.max_payload,
            rooms=tuple(r for r in session.rooms if r not in (session.sid, ALL)),
        )

    def detach(self, session: Session, channel: Channel, reason: str) -> None:
        """The connection ended; the session stays recoverable for the recovery window.

        Synchronous so a transport can call it from a ``finally`` of a cancelled stream.
        """
        if session.channel is not channel or session.state is not SessionState.CONNECTED:
            return  # a stale connection that a resume already replaced
        # A resume on another connection may be reading the log for this session: the events
        # held meanwhile are that connection's (not in what it reads), not this one's to drop.
        # A poll's end (SSE mode=poll) is no leave: the next poll comes at once, unless it waits
        # for one of the browser's connections. Announced, each gap would end every other
        # member's poll, whose next poll would be announced in turn (a storm of polls).
        self._release(session, SessionState.DETACHED, keep_replay=session.taking_over is not None,
                      linger=self._presence_linger(channel))
        session.detached_at = time.monotonic()
        self._cancel_calls(session, reason)
        log.info("session detached", extra={"sid": session.sid, "reason": reason})
        self._background(self.broker.save_session(session.record(self.broker.node), self._session_ttl))

    def _background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self, session: Session, reason: str, *, expired: bool = False) -> None:
        """End a session for good: rooms released, pending calls cancelled."""
        channel = session.channel
        self._release(session, SessionState.CLOSED)
        for room in session.rooms:  # between two polls: its lingering presence goes now
            self._presence.exit(session, room)
        self.sessions.pop(session.sid, None)
        self._cancel_calls(session, reason)
        if channel is not None:
            channel.close(reason)
        self._background(self._drop_record(session.sid, session.key_hash, expired))

    async def _drop_record(self, sid: str, key_hash: str, expired: bool) -> None:
        record = await self.broker.load_session(sid)
        if record is not None and record.node not in ("", self.broker.node):
            return  # resumed on another node meanwhile: the record is theirs
        await self.broker.drop_session(sid, expired=expired, ttl=self.settings.dedup_window, key_hash=key_hash)

    async def _gone(self, sid: str, key: str | None) -> GatewayError:
        """Why ``sid`` cannot be used: expired (told only to whoever holds its key) or unknown."""
        key_hash = await self.broker.expired_session(sid)
        if key_hash is not None and key_matches(key, key_hash):
            return SessionExpired(f"session {sid!r} expired; connect again", sid=sid)
        return _unknown(sid)

    async def _find(self, sid: str, key: str | None) -> tuple[Session, str]:
        """The session to resume: ours, or rebuilt from the record another node left; and
        the node that holds it (this one's ``broker.node`` when ours).

        The key is checked before anything else is looked at or changed.
        """
        here = self.broker.node
        session = self.sessions.get(sid)
        if session is not None and session.state is SessionState.CONNECTED:
            _check_key(session.key_hash, key, sid)
            return session, here
        record = await self.broker.load_session(sid)
        if record is None:
            if session is not None:  # ours, its record lost (a restarted Redis)
                _check_key(session.key_hash, key, sid)
                return session, here
            raise await self._gone(sid, key)
        _check_key(record.key_hash, key, sid)
        if session is not None and record.node == here:
            return session, here
        if session is not None:
            self._forget(session)  # it moved to another node since: our copy is stale
        # The record's node, even if it says this one (our copy was lost: a restart).
        return Session.from_record(record), record.node

    def _forget(self, session: Session) -> None:
        """Drop a local copy without touching the shared record (another node owns it now)."""
        self._release(session, SessionState.CLOSED)
        self.sessions.pop(session.sid, None)

    def _release(self, session: Session, state: SessionState, *, keep_replay: bool = False, linger: float = 0) -> None:
        """Take ``session`` off its connection: out of the live rooms (its presence lingering
        ``linger`` s), no replay (unless ``keep_replay``: a resume on another connection is
        reading it), no expiry timer."""
        self._leave_live(session, linger)
        if not keep_replay:
            self._end_replay(session)
        self._stop_expiry(session)
        self._resumes.pop(session.sid, None)
        session.state = state
        session.channel = None

    # -- requests that may be routed -----------------------------------------

    async def request(self, sid: str, key: str | None, request: Request) -> Any:
        """``handle`` ``request`` for ``sid`` here, or on the node that holds the session.

        ``key`` is the session's private key; without the right one the answer is
        ``UnknownSession``, as for a sid that never existed. This is what lets SSE +
        POST work behind a round-robin balancer: a POST may land on any node.
        """
        session = self.sessions.get(sid)
        if session is not None and session.state is SessionState.CONNECTED:
            _check_key(session.key_hash, key, sid)
        else:
            record = await self.broker.load_session(sid)
            if record is None:
                if session is None:
                    raise await self._gone(sid, key)
                _check_key(session.key_hash, key, sid)  # ours without a record
            elif not key_matches(key, record.key_hash):
                raise _unknown(sid)
            elif (node := self._holder(record)) != self.broker.node:
                if session is not None:
                    self._forget(session)
                return await self.broker.route(
                    node, Command(request.OP, sid, request.encode()), self.settings.route_timeout
                )
            elif session is None:
                raise _unknown(sid)
        return await self.handle(session, request)

    def _holder(self, record: SessionRecord) -> str:
        """The node holding a session: its record's, or where it just moved to from here (the
        new node has not saved the record yet)."""
        if record.node != self.broker.node:
            return record.node
        return self._moved.get(record.sid, record.node)

    async def _command(self, command: Command) -> Any:
        """A request another node routed here: checked again, as any request that enters a node."""
        if command.op == RELEASE_OP:
            return self._let_go(command.sid, command.body.get("to"))
        session = self.sessions.get(command.sid)
        arriving = self._arriving.get(command.sid)
        if arriving is not None:  # the session is moving here: its request runs once it has
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arriving.wait(), self.settings.route_timeout / 2)
            session = self.sessions.get(command.sid)
        if session is None:
            raise UnknownSession(f"no session {command.sid!r} on this node", sid=command.sid)
        if command.op == TRAIL_OP:
            last = command.body.get("last")
            trail = session.trail
            return trail.positions(last) if trail is not None and (last is None or isinstance(last, str)) else None
        return await self.handle(session, decode_request(command.op, command.body))

    async def handle(self, session: Session, request: Request) -> Any:
        """Run one client request for ``session``, whichever transport carried it: the one dispatch.

        ``request`` comes from ``decode_request``. Refused with ``TokenExpired`` once the
        session's token has expired (its connection is ended then too, but a request may
        race the timer).
        """
        if session.expires_at is not None and time.time() >= session.expires_at:
            raise TokenExpired("the session's token has expired: reconnect with a fresh one")
        if session.state is SessionState.CLOSED and session.sid in self._moved:
            # From a connection whose session another node took over: it runs there.
            return await self.request(session.sid, session.key, request)
        match request:
            case Join():
                return await self._join(session, request)
            case Leave():
                return await self._leave(session, request)
            case Publish():
                return await self._publish(session, request)
            case Emit():
                return await self._emit_event(session, request)
            case Ack():
                return self._resolve_ack(session, request)
            case Presence():
                return await self._presence_of(session, request)
            case Close():
                return self.close(session, "client closed")

    # -- client requests -----------------------------------------------------

    async def _join(self, session: Session, request: Join) -> dict[str, Any]:
        room = request.room
        if room in session.rooms:
            await self._presence.flushed()  # a retried join: its presence may have failed to be written
            return {"room": room, "offset": session.rooms[room]}
        limit = self.settings.max_rooms_per_session
        if sum(r not in (session.sid, ALL) for r in session.rooms) >= limit:
            raise TooManyRooms(f"a session may be in {limit} rooms; leave one first", limit=limit)
        await self._authorize_join(session, room)
        # Live before reading the position: with a broker whose fan-out is asynchronous
        # (Redis) an event logged meanwhile is then delivered rather than missed; one
        # logged just before may arrive too, which a client drops by offset.
        live = session.live
        if live:
            self._add_live(session, room)
        try:
            offset = await self.broker.position(session.namespace, room)
        except GatewayError:
            if live:
                self._drop_live(session, room)
            raise
        session.rooms[room] = offset
        session.positions.setdefault(room, offset)
        if session.channel is not None:
            _send(session.channel, frames.Joined(room, offset))
        await self.broker.save_session(session.record(self.broker.node), self._session_ttl)
        await self._presence.flushed()  # acked once every node's presence answer lists it
        return {"room": room, "offset": offset}

    async def _authorize_join(self, session: Session, room: str) -> None:
        """The one decision whether ``session`` may be in ``room`` (join, and publish unjoined):
        not another session's personal room, then the token's rooms claim, then the namespace's hook."""
        if room == ALL or (room != session.sid and await self.broker.load_session(room) is not None):
            raise ForbiddenRoom(f"{room!r} is another session's personal room", room=room)
        if self.jwt is not None and not self.jwt.allows_room(session.claims, room):
            raise ForbiddenRoom(f"the token does not allow room {room!r}", room=room)
        if not await self.namespaces[session.namespace].may_join(session, room):
            raise ForbiddenRoom(f"not allowed to join {room!r}", room=room)

    async def _leave(self, session: Session, request: Leave) -> dict[str, Any]:
        room = request.room
        if room in (session.sid, ALL):
            raise ForbiddenRoom("a session cannot leave its personal room", room=room)
        if room not in session.rooms:
            raise NotJoined(f"not in room {room!r}", room=room)
        if session.live:
            self._drop_live(session, room)
        del session.rooms[room]
        session.positions.pop(room, None)
        if session.channel is not None:
            _send(session.channel, frames.Left(room))
        await self.broker.save_session(session.record(self.broker.node), self._session_ttl)
        return {"room": room}

    async def _publish(self, session: Session, request: Publish) -> dict[str, Any]:
        """Log and fan out a room event; the ack (its offset) comes once it is in the log."""
        self.limits.request(session)  # before anything else: refused, it changes nothing
        await self._admit(session, request.room)
        if request.volatile:  # not logged, so nothing to deduplicate against
            volatile = Envelope(
                session.namespace, request.room, request.event, request.data, "",
                session.sid, request.client_event_id, 0, request.include_self, volatile=True,
            )
            await self.broker.publish_volatile(volatile, request.include_self)
            return {"room": request.room, "volatile": True}

        async def publish(dedup: Dedup | None) -> dict[str, Any]:
            draft = Envelope(
                session.namespace, request.room, request.event, request.data, "",
                session.sid, request.client_event_id, 0, request.include_self,
            )
            logged = await self.broker.publish(draft, request.include_self, dedup)
            return {"room": logged.room, "offset": logged.offset}

        # A retransmission's answer is the stored ack of the first: the same shape
        acked: dict[str, Any] = await self.dedup.once(
            self._dedup_key(session, request.client_event_id), publish, logs_itself=True
        )
        return acked

    async def _emit_event(self, session: Session, request: Emit) -> Any:
        """Run the namespace's handler; its return value is the ack."""
        self.limits.request(session)
        handler = self.namespaces[session.namespace].handlers.get(request.event)
        if handler is None:
            raise UnknownEvent(f"no handler for event {request.event!r}", event=request.event)

        async def run(_: Dedup | None) -> Any:
            result = await handler(session, request.data)
            try:
                return check_data(result, "result")
            except GatewayError as exc:  # the application's bug: said so, never half-sent
                log.error("handler result cannot be sent", extra={"event": request.event, "problem": exc.message})
                raise GatewayError(f"the {request.event!r} handler returned what cannot be sent: {exc.message}") from None

        # A volatile emit is sent once and never again: not worth a dedup entry.
        key = None if request.volatile else self._dedup_key(session, request.client_event_id)
        return await self.dedup.once(key, run)

    async def _presence_of(self, session: Session, request: Presence) -> dict[str, Any]:
        """A page of a room's members, for a member of it (others only where the namespace
        says ``presence_unjoined`` and they would be allowed to join it)."""
        self.limits.request(session)
        if request.room not in session.rooms:
            if not self.namespaces[session.namespace].presence_unjoined:
                raise NotJoined(f"join {request.room!r} to see who is in it", room=request.room)
            await self._authorize_join(session, request.room)
        return await self._presence.page(session.namespace, request.room, request.cursor)

    def _resolve_ack(self, session: Session, request: Ack) -> None:
        ack = self.acks.resolve(request.ack_id, session.sid, request.result)
        if ack.waiter is not None and not ack.waiter.done():
            ack.waiter.set_result(request.result)

    async def _admit(self, session: Session, room: str) -> None:
        """May ``session`` publish to ``room``? Members may; others only where allowed and
        only into a room they would be allowed to join."""
        if room in session.rooms:
            return
        allow = self.namespaces[session.namespace].allow_publish_unjoined
        if allow is None:
            allow = self.settings.allow_publish_unjoined
        if not allow:
            raise NotJoined(f"join {room!r} before publishing to it", room=room)
        await self._authorize_join(session, room)

    def _dedup_key(self, session: Session, client_event_id: str | None) -> str | None:
        if client_event_id is None:
            return None
        return f"{session.namespace}|{session.user or session.sid}|{client_event_id}"

    # -- server-side API -----------------------------------------------------

    async def emit(
        self, namespace: str, event: str, data: Any = None, *, to: str | None = None, volatile: bool = False
    ) -> str | None:
        """Send a room event from the server to a room, a sid (its personal room) or, by default,
        the whole namespace. Logged like any room event; returns its offset. ``volatile``: not
        logged (no offset: returns None), never replayed, dropped for a member not ready for it."""
        if namespace not in self.namespaces:
            raise UnknownNamespace(f"no namespace {namespace!r}", namespace=namespace)
        room, event, data = server_event(to, event, data)
        draft = Envelope(namespace, room, event, data, "", None, None, 0, volatile=volatile)
        if volatile:
            await self.broker.publish_volatile(draft, True)
            return None
        logged = await self.broker.publish(draft, True)
        return logged.offset

    async def presence(self, namespace: str, room: str, *, cursor: str | None = None) -> dict[str, Any]:
        """Who is in ``room`` of ``namespace``, on every node: ``{"room", "members": [{"sid", "user",
        "claims"}], "next"}``, at most ``presence_page_size`` members; ``next`` (None on the last
        page) is the ``cursor`` of the next page."""
        if namespace not in self.namespaces:
            raise UnknownNamespace(f"no namespace {namespace!r}", namespace=namespace)
        check_name("room", room)
        if cursor is not None:
            check_name("cursor", cursor)
        return await self._presence.page(namespace, room, cursor)

    async def call(
        self, namespace: str, sid: str, event: str, data: Any = None, *, timeout: float | None = None
    ) -> Any:
        """Send ``event`` to one session and await its acknowledgement.

        Raises ``AckTimeout`` if it does not come in time, ``SessionClosed`` if the
        session disconnects first, whatever the transport.
        """
        data = check_data(data)  # a binary marker object becomes its bytes, as in every payload
        session = self.sessions.get(sid)
        if session is None or session.namespace != namespace or session.channel is None:
            raise SessionClosed(f"session {sid!r} is not connected to {namespace}", sid=sid)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ack = self.acks.open(sid, event, future)
        session.channel.call(ack.ack_id, event, data)
        try:
            result = await asyncio.wait_for(future, timeout or self.settings.call_timeout)
        except TimeoutError:
            self.acks.expire(ack.ack_id)
            self.metrics.calls.labels("timeout").inc()
            raise AckTimeout(f"{event!r} to {sid} was not acknowledged in time", sid=sid) from None
        except SessionClosed:
            self.metrics.calls.labels("cancelled").inc()
            raise
        self.metrics.calls.labels("acked").inc()
        return result

    # -- fan-out -------------------------------------------------------------

    def _fanout(self, publication: Publication) -> None:
        """Called by the broker for every logged (or volatile) event, on every node. Encodes once."""
        envelope = publication.envelope
        skip = None if publication.include_sender else envelope.sender
        room = self.rooms.get(envelope.namespace, envelope.room)
        (self.metrics.volatile if envelope.volatile else self.metrics.published).inc()
        if room is not None:
            wire = envelope.encode()
            for name, members in list(room.members.items()):
                self.transports[name].broadcast(room, members, envelope, wire, skip)
                self.metrics.delivered.labels(name).inc(len(members) - (skip in members))
        for session in self._replaying.get(envelope.namespace, ()):
            if envelope.room in session.rooms and session.sid != skip and session.backlog is not None:
                if envelope.volatile:  # between connections: not ready for it, and no log brings it back
                    self.metrics.dropped.labels("volatile_not_ready").inc()
                else:
                    session.backlog.append(envelope)

    def _presence_linger(self, channel: Channel | None) -> float:
        """How long a session leaving ``channel`` stays in presence: a poll's (SSE ``mode=poll``)
        is between two polls, for up to ``ping_timeout``; any other leaves at once."""
        return self.settings.ping_timeout if getattr(channel, "poll", False) else 0

    def _begin_replay(self, session: Session) -> None:
        # A poll's resume: its presence lingers on through the replay (see ``detach``).
        self._leave_live(session, self._presence_linger(session.channel))
        session.backlog = []
        self._replaying.setdefault(session.namespace, set()).add(session)

    def _end_replay(self, session: Session) -> list[Envelope]:
        backlog = session.backlog or []
        session.backlog = None
        waiting = self._replaying.get(session.namespace)
        if waiting is not None:
            waiting.discard(session)
            if not waiting:
                del self._replaying[session.namespace]
        return backlog

    def _go_live(self, session: Session) -> None:
        channel = session.channel
        if channel is None or session.state is not SessionState.CONNECTED:
            self._end_replay(session)  # detached meanwhile: it must not rejoin live rooms
            return
        for envelope in self._end_replay(session):
            seen = session.positions.get(envelope.room)
            if seen is None or parse_offset(envelope.offset) > parse_offset(seen):
                channel.deliver(session, envelope, envelope.encode())
                session.positions[envelope.room] = envelope.offset
        for room in list(session.rooms):
            if session.channel is not channel:
                return  # cut meanwhile (its transport could not keep up): it resumes again
            self._add_live(session, room)

    def _add_live(self, session: Session, room: str) -> None:
        self.rooms.add(session, room)
        if room not in (session.sid, ALL):  # a personal room and the namespace room have no presence
            self._presence.enter(session, room)

    def _drop_live(self, session: Session, room: str, linger: float = 0) -> None:
        self.rooms.discard(session, room)
        self._presence.exit(session, room, linger=linger)

    def _leave_live(self, session: Session, linger: float = 0) -> None:
        if not session.live or session.channel is None:
            return
        for room in session.rooms:
            self._drop_live(session, room, linger)

    def _fanout_gap(self) -> None:
        """Fan-out to this node was interrupted: live sessions may have missed events.

        They are sent away with a reconnect hint; resuming from their offsets replays
        what the log holds and reports a gap for anything it does not.
        """
        for session in list(self.sessions.values()):
            if session.channel is not None:
                _send_away(session.channel, "broker_gap", reconnect=True)

    def _start_expiry(self, session: Session, channel: Channel) -> None:
        """End the connection when the session's token expires; the client reconnects with a fresh one."""
        self._stop_expiry(session)
        if session.expires_at is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, session.expires_at - time.time())
        session.expiry = loop.call_at(loop.time() + delay, self._token_expired, session, channel)

    def _stop_expiry(self, session: Session) -> None:
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None

    def _token_expired(self, session: Session, channel: Channel) -> None:
        session.expiry = None
        if session.channel is channel and session.state is SessionState.CONNECTED:
            self.metrics.rejected.labels(TokenExpired.code).inc()
            _send_away(channel, "token_expired", reconnect=True)

    def _cancel_calls(self, session: Session, reason: str) -> None:
        for ack in self.acks.cancel_session(session.sid):
            if ack.waiter is not None and not ack.waiter.done():
                ack.waiter.set_exception(
                    SessionClosed(f"session disconnected ({reason}) before acknowledging", sid=session.sid)
                )

    # -- expiry --------------------------------------------------------------

    @property
    def _session_ttl(self) -> float:
        return self.settings.ping_timeout + self.settings.recovery_window

    async def _sweep_forever(self) -> None:
        period = max(0.05, min(1.0, self._session_ttl / 4))
        refreshed = time.monotonic()
        while True:
            await asyncio.sleep(period)
            await self.expire_detached()
            await self.broker.sweep()  # idle room logs trimmed, empty ones dropped (gateway/brokers/memory.py)
            collect_young()  # cyclic garbage holding client payloads, freed on a quiet node too (budget.py)
            if time.monotonic() - refreshed > self._session_ttl / 3:
                refreshed = time.monotonic()
                await self._refresh_records()

    async def _refresh_records(self) -> None:
        """Keep connected sessions' records alive in the broker (they carry a TTL)."""
        for session in list(self.sessions.values()):
            if session.state is SessionState.CONNECTED:
                try:
                    await self.broker.save_session(session.record(self.broker.node), self._session_ttl)
                except GatewayError:
                    return  # the broker is down; the next sweep tries again

    async def expire_detached(self) -> None:
        """Close sessions detached longer than ``ping_timeout + recovery_window``."""
        deadline = time.monotonic() - self._session_ttl
        for session in list(self.sessions.values()):
            if session.state is SessionState.DETACHED and session.detached_at < deadline:
                self.close(session, "expired", expired=True)

    def metrics_text(self) -> bytes:
        """Prometheus exposition, with the session gauges counted at scrape time."""
        counts = dict.fromkeys(SessionState, 0)
        for session in self.sessions.values():
            counts[session.state] += 1
        for state, count in counts.items():
            self.metrics.sessions.labels(state.value).set(count)
        return self.metrics.render()


def _send(channel: Channel, frame: frames.Frame) -> None:
    channel.send(frame.NAME, frame.encode())


def _send_away(channel: Channel, reason: str, *, reconnect: bool) -> None:
    """Tell the client why its connection ends (and whether to come back), then end it."""
    _send(channel, frames.Close(reason, reconnect))
    channel.close(reason)


def _check_auth(auth: dict[str, Any], limit: int) -> None:
    """What a client connects with is held as long as its session: bounded, and plain JSON."""
    try:
        size = len(orjson.dumps(auth))
    except (TypeError, orjson.JSONEncodeError):
        raise ValidationFailed("auth must be a JSON object", field="auth") from None
    if size > limit:
        raise ValidationFailed(f"auth is {size} bytes, over the limit of {limit}", field="auth", limit=limit)


def _unknown(sid: str) -> UnknownSession:
    return UnknownSession(f"no session {sid!r} for this key", sid=sid)


def _check_key(key_hash: str, key: str | None, sid: str) -> None:
    if not key_matches(key, key_hash):
        raise _unknown(sid)


def make_broker(settings: Settings) -> Broker:
    if settings.broker == "memory":
        return MemoryBroker(settings)
    if settings.broker.startswith(("redis://", "rediss://", "unix://")):
        from gateway.brokers.redis import RedisBroker

        return RedisBroker(settings)
    raise ValueError(f"GATEWAY_BROKER must be 'memory' or a redis:// URL, not {settings.broker!r}")
