"""Presence: who is in a room, the same answer on every node, and its join/leave announcements.

A session is *present* in a room while it is a live member of it on some node (joined,
connected, not replaying a resume); its personal room and the namespace room ``*`` have no
presence. The hub tells this node's ``PresenceTracker`` as live membership changes
(``enter``/``exit``, synchronous), and the tracker:

- keeps this node's share (``_here``) and writes the changes to the broker in batches
  (everything changed while a write was under way goes in the next one; a change and its
  reversal before the write leave one entry, the latest), so the broker answers the same
  on every node: the memory broker in-process, Redis in per-room sorted sets
  (``brokers/redis_presence.py``). ``flushed`` waits until what changed so far is written:
  a join is acked, and a presence answer read, only after that;
- keeps this node alive in the broker (``presence_beat`` every ``presence_heartbeat``
  seconds). On Redis, a node silent for ``presence_expiry`` seconds is dead: its members
  leave every answer at once, and the next live node's heartbeat takes them out for good
  and announces their leave. A node that finds it was taken for dead (Redis was out of its
  reach that long) writes all its members again;
- where the namespace turns them on (``presence_events``), announces the changes to the
  room's members as ``presence.join`` / ``presence.leave`` room events (volatile: not
  logged, dropped for a member not ready, as any volatile event), gathered over
  ``presence_event_window`` seconds: one event per room and kind listing every member that
  changed, at most ``presence_page_size`` members an event; a member that left and came
  back within the window (a reconnect) is not announced at all. A session between two polls
  (SSE ``mode=poll``) has not left: the hub makes its exit linger (``exit(..., linger=)``)
  and its next poll's entry cancels it, however long that poll waited for a connection.

Announcements are hints for a live view; the presence request is the truth (a client that
resumes asks again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.wire.envelope import Envelope, check_data
from gateway.wire.errors import BrokerUnavailable, GatewayError, ValidationFailed

if TYPE_CHECKING:
    from gateway.brokers.base import Broker
    from gateway.core.namespaces import Namespace
    from gateway.core.sessions import Session
    from gateway.metrics import Metrics
    from gateway.settings import Settings

log = logging.getLogger("gateway.presence")

JOIN, LEAVE = "presence.join", "presence.leave"
# A failed write is tried again after this long (seconds); what changed meanwhile joins it.
RETRY_AFTER = 0.5

PresenceKey = tuple[str, str, str]
"""``(namespace, room, sid)``: one member of one room."""


@dataclass(frozen=True, slots=True)
class Member:
    """One room member as others see it: its public id, its user and the claims its namespace
    shows (``presence_claims``); never its key."""

    sid: str
    user: str | None
    claims: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"sid": self.sid, "user": self.user, "claims": self.claims}


@dataclass(frozen=True, slots=True)
class Page:
    """Members of a room in the order of their sids, and the cursor of the next page (None: the last)."""

    members: list[Member]
    next: str | None


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat learnt: ``rejoined``, this node's entries were lost (it was taken for
    dead) and must be written again; ``gone``, members of dead nodes it took out,
    ``(namespace, room, member)``."""

    rejoined: bool = False
    gone: tuple[tuple[str, str, Member], ...] = ()


class PresenceTracker:
    """This node's share of presence, kept in the broker, and its announcements."""

    def __init__(
        self, broker: Broker, settings: Settings, metrics: Metrics, namespaces: Mapping[str, Namespace]
    ) -> None:
        self._broker = broker
        self._settings = settings
        self._metrics = metrics
        self._namespaces = namespaces
        self._here: dict[tuple[str, str], dict[str, Member]] = {}  # (namespace, room) -> sid -> member
        self._unwritten: dict[PresenceKey, Member | None] = {}  # the latest of each entry; None: gone
        self._changes = 0  # changes made so far
        self._written = 0  # changes the broker has
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._dirty = asyncio.Event()
        # (namespace, room) -> sid -> (joined, member): what the next announcement says
        self._news: dict[tuple[str, str], dict[str, tuple[bool, Member]]] = {}
        self._news_due = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # (namespace, room, sid) -> the exit that happens unless the member enters again first
        self._lingering: dict[PresenceKey, asyncio.TimerHandle] = {}
        self._joins = metrics.presence_changes.labels("join")
        self._leaves = metrics.presence_changes.labels("leave")

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Register this node (a first heartbeat), then write, beat and announce in the background."""
        await self.beat()
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="presence-writer"),
            asyncio.create_task(self._beat_forever(), name="presence-heartbeat"),
            asyncio.create_task(self._announce_forever(), name="presence-announcer"),
        ]

    async def stop(self) -> None:
        """Stop the background work. What this node held lapses with its heartbeat (Redis: after
        ``presence_expiry``, when another node takes it out and announces it)."""
        tasks, self._tasks = self._tasks, []
        for lingering in self._lingering.values():
            lingering.cancel()
        self._lingering.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(BrokerUnavailable("the gateway is stopping"))
        self._waiters.clear()

    # -- what the hub says -------------------------------------------------------------

    def enter(self, session: Session, room: str) -> None:
        """``session`` is a live member of ``room`` on this node now."""
        lingering = self._lingering.pop((session.namespace, room, session.sid), None)
        if lingering is not None:
            lingering.cancel()  # back before its exit: it never left
        members = self._here.setdefault((session.namespace, room), {})
        if session.sid in members:
            return
        member = members[session.sid] = self._member(session)
        self._joins.inc()
        self._changed((session.namespace, room, session.sid), member)
        self._note(session.namespace, room, member, joined=True)

    def exit(self, session: Session, room: str, *, linger: float = 0) -> None:
        """``session`` is no longer a live member of ``room`` on this node (left, cut, closed).

        ``linger`` > 0: only if it has not entered again within that many seconds (a poll ended
        and the next one is on its way); meanwhile it stays in every answer, and nothing is
        announced. An exit without ``linger`` is at once, a lingering one included."""
        entry = (session.namespace, room, session.sid)
        lingering = self._lingering.pop(entry, None)
        if lingering is not None:
            lingering.cancel()
        if linger > 0 and session.sid in self._here.get((session.namespace, room), {}):
            self._lingering[entry] = asyncio.get_running_loop().call_later(linger, self._exit, *entry)
            return
        self._exit(*entry)

    def _exit(self, namespace: str, room: str, sid: str) -> None:
        self._lingering.pop((namespace, room, sid), None)
        key = (namespace, room)
        members = self._here.get(key)
        member = members.pop(sid, None) if members is not None else None
        if member is None:
            return
        if not members:
            del self._here[key]
        self._leaves.inc()
        self._changed((namespace, room, sid), None)
        self._note(namespace, room, member, joined=False)

    async def flushed(self) -> None:
        """Return once every change made so far is in the broker; raise ``BrokerUnavailable``
        (or the broker's error) if the write that carried it failed (it is tried again)."""
        if self._written >= self._changes:
            return
        if not self._tasks:  # not started, or stopping: no writer will come
            raise BrokerUnavailable("presence is not being written (the gateway is not running)")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._changes, waiter))
        await waiter

    async def page(self, namespace: str, room: str, cursor: str | None) -> dict[str, Any]:
        """One page of ``room``'s members, from the broker: ``{"room", "members", "next"}``."""
        await self.flushed()
        found = await self._broker.presence_page(namespace, room, cursor, self._settings.presence_page_size)
        return {"room": room, "members": [m.to_wire() for m in found.members], "next": found.next}

    async def beat(self) -> None:
        """One heartbeat: stay alive in the broker, write everything again if this node was
        taken for dead, and announce the members of dead nodes it took out."""
        try:
            beat = await self._broker.presence_beat()
        except GatewayError as exc:  # the broker is away: the next beat tries again
            log.warning("presence heartbeat failed: %s", exc)
            return
        if beat.rejoined:
            for (namespace, room), members in self._here.items():
                for member in members.values():
                    self._changed((namespace, room, member.sid), member)
                    self._note(namespace, room, member, joined=True)
        for namespace, room, member in beat.gone:
            if member.sid not in self._here.get((namespace, room), {}):  # ours again: it is not gone
                self._note(namespace, room, member, joined=False)

    # -- internals -------------------------------------------------------------------

    def _member(self, session: Session) -> Member:
        shown = self._namespaces[session.namespace].presence_claims
        claims = {name: session.claims[name] for name in shown if name in session.claims}
        if claims:
            try:
                check_data(claims, "claims")
            except ValidationFailed as exc:  # the application's middleware set something unsendable
                log.error("presence claims cannot be shown", extra={"problem": exc.message})
                claims = {}
        return Member(session.sid, session.user, claims)

    def _changed(self, key: PresenceKey, member: Member | None) -> None:
        self._unwritten[key] = member
        self._changes += 1
        self._dirty.set()

    def _note(self, namespace: str, room: str, member: Member, *, joined: bool) -> None:
        ns = self._namespaces.get(namespace)
        if ns is None or not ns.presence_events:
            return
        news = self._news.setdefault((namespace, room), {})
        earlier = news.pop(member.sid, None)
        if earlier is None or earlier[0] == joined:
            news[member.sid] = (joined, member)
        elif not news:  # a leave and a join again (or the reverse) within the window: nothing to say
            del self._news[(namespace, room)]
        self._news_due.set()

    def _settle(self, upto: int, error: BaseException | None) -> None:
        waiting = []
        for mark, waiter in self._waiters:
            if mark > upto:
                waiting.append((mark, waiter))
            elif not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
        self._waiters = waiting

    async def _write_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            changes, self._unwritten = self._unwritten, {}
            upto = self._changes
            try:
                await self._broker.presence_write(changes)
            except Exception as exc:  # the writer must live on; the waiters hear why
                error = exc if isinstance(exc, GatewayError) else BrokerUnavailable("could not write presence")
                if not isinstance(exc, GatewayError):
                    log.exception("presence write failed")
                for key, member in changes.items():
                    self._unwritten.setdefault(key, member)  # a newer change to the same entry wins
                self._settle(upto, error)
                await asyncio.sleep(RETRY_AFTER)
                self._dirty.set()
                continue
            self._written = upto
            self._settle(upto, None)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.presence_heartbeat)
            await self.beat()

    async def _announce_forever(self) -> None:
        while True:
            await self._news_due.wait()
            await asyncio.sleep(self._settings.presence_event_window)  # gather what else changes
            self._news_due.clear()
            news, self._news = self._news, {}
            try:
                await self.flushed()  # a member told of a change finds it in a presence answer
            except GatewayError:
                pass  # announced all the same: the answers catch up when the write is retried
            for (namespace, room), changes in news.items():
                for joined, name in ((True, JOIN), (False, LEAVE)):
                    members = [member.to_wire() for was, member in changes.values() if was is joined]
                    size = self._settings.presence_page_size
                    for start in range(0, len(members), size):
                        await self._announce(namespace, room, name, members[start:start + size])

    async def _announce(self, namespace: str, room: str, name: str, members: list[dict[str, Any]]) -> None:
        draft = Envelope(namespace, room, name, {"members": members}, "", None, None, 0, volatile=True)
        try:
            await self._broker.publish_volatile(draft, True)
        except GatewayError as exc:
            self._metrics.dropped.labels("presence_unannounced").inc()
            log.warning("could not announce %s in %s %s: %s", name, namespace, room, exc)
            return
        self._metrics.presence_events.labels(name).inc()


__all__ = ["JOIN", "LEAVE", "Beat", "Member", "Page", "PresenceKey", "PresenceTracker"]
