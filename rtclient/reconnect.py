"""The reconnect state machine, sans-I/O: what to do after a loss, decided in one place.

Both drivers (``rtclient.aio`` on asyncio, ``rtclient.blocking`` on threads or gevent) feed
it what happened and perform what it answers; it never sleeps, opens or sends anything
itself, so it is tested without an event loop (tests/test_reconnect_machine.py).

Events in::

    lost()               the connection is gone (or a request found the session gone)
    timer_fired()        the last ``Sleep`` is over
    opened()             an attempt gave a usable ``open``
    failed(error)        an attempt failed (refused by the gateway, unusable, network...)
    rejoined()           every room of the last ``Rejoin`` was joined again
    closing(event)       the gateway said ``close``
    join(room), leave(room), join_refused(room)   what the application asked for

Actions out: ``Sleep(seconds)``, ``OpenSession(resume)``, ``Rejoin(rooms)``,
``Deliver(events)`` (the ``Gap`` events of a lost session), ``Stop(reason)``.

Two sets of rooms are kept apart: ``wanted``, the rooms the application asked for (join adds,
leave removes), and ``state.rooms``, the rooms the gateway confirmed (``joined``/``left``
frames, a resumed ``open``). After any start over, the new session is in nothing: every
wanted room is joined again, and until that is done (``rejoined``) every later successful
open — a resume of the half-started session, or yet another start over — rejoins them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from gateway.wire.errors import GatewayError

from .protocol import (
    RESUME_REFUSED,
    SESSION_GONE,
    TRANSIENT,
    UNUSABLE_RESUMES,
    Backoff,
    ClientEvent,
    ClientState,
    Closing,
    ConnectionLost,
    SessionEnded,
    TokenSource,
    UnusableStream,
    retry_after,
    retry_delay,
)

log = logging.getLogger("rtclient")


# -- actions a driver performs --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait this long, then call ``timer_fired``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class OpenSession:
    """Open a connection: resume the session (``resume``) or start a new one. Then call
    ``opened`` or ``failed``."""

    resume: bool


@dataclass(frozen=True, slots=True)
class Rejoin:
    """Join these rooms again on the new session, then call ``rejoined`` (``join_refused`` for
    a room the gateway refuses for good; on a lost connection, ``lost``)."""

    rooms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand these events to the application."""

    events: tuple[ClientEvent, ...]


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop for good: no reconnect; pending and later requests raise ``SessionEnded(reason)``."""

    reason: str


Action = Sleep | OpenSession | Rejoin | Deliver | Stop


# -- what a failed request does next ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Send the request again after this long (the gateway did nothing with it)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class AwaitReconnect:
    """The connection (or the session) is gone: reconnect, then send it again."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Final: raise this."""

    error: BaseException


RequestStep = RetryAfter | AwaitReconnect | GiveUp


class Reconnector:
    """One client's reconnect decisions over its ``ClientState``."""

    def __init__(self, state: ClientState, backoff: Backoff) -> None:
        self.state = state
        self.backoff = backoff
        self.wanted: set[str] = set()  # the rooms the application asked for
        self.ended: SessionEnded | None = None
        self.reconnecting = False
        self._rejoin = False  # a new session whose wanted rooms are not all joined yet
        self._unusable = 0  # resumes in a row that gave no usable open frame
        self._resuming = False  # what the attempt under way is

    # -- the application's rooms ---------------------------------------------------------

    def join(self, room: str) -> None:
        """The application asked for ``room`` (before the request goes out: a start over
        while it is under way rejoins it)."""
        self.wanted.add(room)

    def leave(self, room: str) -> None:
        self.wanted.discard(room)

    def join_refused(self, room: str) -> None:
        """The gateway refused ``room`` for good (e.g. ``forbidden_room``): not asked for again."""
        self.wanted.discard(room)

    # -- liveness -------------------------------------------------------------------------

    @property
    def silence_limit(self) -> float:
        """Seconds without a byte after which a stream is dead (the gateway pings every
        ``pingInterval`` and gives up after ``pingTimeout`` more)."""
        return self.state.ping_interval + self.state.ping_timeout

    def is_dead(self, silence: float) -> bool:
        return silence > self.silence_limit

    # -- the connection's life ----------------------------------------------------------

    def stop(self, why: SessionEnded) -> list[Action]:
        """Stop for good (the first reason stays)."""
        if self.ended is None:
            self.ended = why
        self.reconnecting = False
        return [Stop(self.ended.reason)]

    def closing(self, event: Closing) -> list[Action]:
        """The gateway's ``close``: ``reconnect: false`` (``replaced``) stops the client."""
        return [] if event.reconnect else self.stop(SessionEnded(event.reason))

    def lost(self) -> list[Action]:
        """The connection is gone: wait a backoff delay, then try again."""
        if self.ended is not None:
            return []
        self.reconnecting = True
        self.backoff.reset()
        return [Sleep(self.backoff.next())]

    def timer_fired(self) -> list[Action]:
        if self.ended is not None:
            return []
        # No sid: a start over whose attempt failed before its open frame; again.
        self._resuming = self.state.sid is not None
        return [OpenSession(resume=self._resuming)]

    def opened(self) -> list[Action]:
        """An attempt gave a usable ``open`` (the first connect too)."""
        if self.reconnecting:
            self.state.stats.reconnects += 1
        self.reconnecting = False
        self._unusable = 0
        return [Rejoin(tuple(sorted(self.wanted)))] if self._rejoin and self.wanted else self._rejoined()

    def rejoined(self) -> list[Action]:
        return self._rejoined()

    def _rejoined(self) -> list[Action]:
        self._rejoin = False
        return []

    def failed(self, error: BaseException) -> list[Action]:
        """The attempt ``timer_fired`` (or ``failed``) asked for did not give a usable open."""
        if self.ended is not None:
            return []
        resume = self._resuming
        if isinstance(error, UnusableStream):
            self._unusable += 1
        if resume and (
            (isinstance(error, GatewayError) and (error.code in SESSION_GONE or error.code in RESUME_REFUSED))
            or (isinstance(error, UnusableStream) and self._unusable >= UNUSABLE_RESUMES)
        ):
            # The session is gone, or resuming it again would get the same answer: a new one.
            log.warning("cannot resume the session (%s): starting a new one", error)
            return [Deliver(tuple(self.start_over())), OpenSession(resume=False)]
        if isinstance(error, (GatewayError, ConnectionLost, OSError, TimeoutError)):
            # A gateway error reads "<code>: <message>"; anything else by its type.
            shown = str(error) if isinstance(error, GatewayError) else repr(error)
            log.info("%s failed: %s", "resuming" if resume else "starting over", shown)
        else:  # e.g. the token callback failed, or the library raised something unexpected
            log.warning("%s failed", "resuming" if resume else "starting over", exc_info=error)
        # A rate_limited refusal says how long to wait at least.
        return [Sleep(max(self.backoff.next(), retry_after(error) or 0.0))]

    def start_over(self) -> list[ClientEvent]:
        """Forget the session (the gateway did): its ``Gap`` events; the next open is a new
        session, which rejoins every wanted room."""
        self._resuming = False
        self._rejoin = True
        return self.state.session_lost() if self.state.sid is not None else []

    # -- requests -------------------------------------------------------------------------

    def request_step(self, error: BaseException, refusals: int) -> RequestStep:
        """A request failed with ``error`` (its ``refusals``-th transient refusal in a row)."""
        if self.ended is not None:  # e.g. unknown_sid after ``replaced``: the key is someone else's now
            return GiveUp(self.ended)
        if isinstance(error, ConnectionLost):
            return AwaitReconnect()
        if isinstance(error, GatewayError):
            if error.code in SESSION_GONE:
                return AwaitReconnect()
            if error.code in TRANSIENT:  # e.g. rate_limited: after its retryAfter (nothing was done)
                return RetryAfter(retry_delay(error, refusals, self.backoff))
        return GiveUp(error)

    def connect_retry(self, error: BaseException, refusals: int) -> float | None:
        """The first connect was refused: seconds to wait before trying again (only a
        ``rate_limited`` refusal is tried again), or None to raise."""
        if retry_after(error) is None:
            return None
        return retry_delay(error, refusals, self.backoff)


# -- auto: which transport, and when to move the session --------------------------------

# What carries an ``auto`` session: SSE (streaming, or polling behind a buffering proxy), or
# Socket.IO on WebSocket or on long-polling.
Carrier = Literal["sse", "sse-poll", "websocket", "polling"]
# SSE attempts in a row that failed for the network's sake before Socket.IO polling is tried.
SSE_FAILURES = 2
# Seconds after an SSE attempt began by which WebSocket is tried beside it, answered or not.
PROBE_LATEST = 0.5


def network_trouble(error: BaseException) -> bool:
    """The network's trouble, not the gateway's answer: what another transport may get past.
    A bare ``GatewayError`` is a body the gateway did not write (a proxy's)."""
    return not isinstance(error, GatewayError) or type(error) is GatewayError


class NetworkMemory:
    """What failed on the way to each gateway URL, for a while (``remember`` s): a client made
    later in this process does not retry a blocked WebSocket first. Thread-safe."""

    def __init__(self) -> None:
        self._facts: dict[str, dict[str, tuple[str, float]]] = {}
        self._lock = threading.Lock()

    def recall(self, url: str, now: float | None = None) -> dict[str, str]:
        """The live facts about ``url``: ``{"websocket": "failed", "sse": "poll" | "failed"}``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return {what: value for what, (value, until) in self._facts.get(url, {}).items() if until > now}

    def note(self, url: str, what: str, value: str, seconds: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._facts.setdefault(url, {})[what] = (value, now + seconds)

    def forget(self, url: str) -> None:
        with self._lock:
            self._facts.pop(url, None)


network_memory = NetworkMemory()


@dataclass(frozen=True, slots=True)
class Attempt:
    """A line of ``AutoPlan.history``: what was tried, and how it went."""

    at: float  # time.monotonic()
    transport: Carrier
    outcome: str  # trying, open, failed, buffered, moved, abandoned
    detail: str = ""


class AutoPlan:
    """``transport="auto"``'s decisions, sans-I/O, as rtgateway.js makes them.

    Open on SSE at once (one round trip to a session) and try WebSocket beside it; when
    WebSocket opens, move the session there (a resume on the other transport). WebSocket
    refused: stay on SSE + POST; SSE buffered by a proxy: SSE poll mode; SSE failing for the
    network's sake ``SSE_FAILURES`` times in a row: Socket.IO long-polling. A failure is
    remembered (``network_memory``, per gateway URL) only once another transport got through
    to the same gateway: a gateway that is down fails every transport, and must not leave its
    clients on the worst one.
    """

    def __init__(self, url: str, remember: float = 600.0, memory: NetworkMemory = network_memory) -> None:
        self.url = url
        self.remember = remember
        self.memory = memory
        self.history: deque[Attempt] = deque(maxlen=100)
        self.ws_works = False  # WebSocket carried this session: reconnect on it directly
        self._ws_refused = False  # WebSocket failed here (remembered once another got through)
        self._sse_failures = 0

    def next(self) -> Carrier:
        """The transport of the next attempt."""
        known = self.memory.recall(self.url)
        if self.ws_works and known.get("websocket") != "failed":
            return "websocket"
        if known.get("sse") == "failed" or self._sse_failures >= SSE_FAILURES:
            return "polling"  # the last resort (had WebSocket passed, the session would be on it)
        return "sse-poll" if known.get("sse") == "poll" else "sse"

    @staticmethod
    def connect_again(tried: Carrier, error: BaseException, attempts: int) -> bool:
        """The first connect's ``attempts``-th attempt, on ``tried``, failed with ``error``:
        whether to go on with the plan's next attempt rather than raise. On the network's
        trouble only, until the last resort (polling) has been tried: SSE ``SSE_FAILURES``
        times, then polling, as reconnects do, so a network that refuses WebSocket and SSE
        still gets a session from ``connect``."""
        return network_trouble(error) and tried != "polling" and attempts <= SSE_FAILURES

    def probe_beside(self, transport: Carrier) -> bool:
        """Whether to try WebSocket beside a session on ``transport``: SSE streaming only, and
        not when WebSocket is known to fail here. Not beside SSE poll mode: each poll is a
        resume, and one in flight when the session moves would take it back from WebSocket."""
        return transport == "sse" and self.memory.recall(self.url).get("websocket") != "failed"

    def note(self, transport: Carrier, outcome: str, detail: str = "") -> None:
        self.history.append(Attempt(time.monotonic(), transport, outcome, detail))

    def failed(
        self, transport: Carrier, error: BaseException, other_got_through: bool = False, reached: bool = False
    ) -> None:
        """An attempt on ``transport`` failed; ``other_got_through``: another transport holds
        a session on the same gateway meanwhile; ``reached``: its handshake got through before
        it failed (a connection cut mid-move by the network is not the network refusing it)."""
        self.note(transport, "failed", str(error)[:120])
        if reached or not network_trouble(error):
            return
        if transport == "websocket":
            self.ws_works = False
            self._ws_refused = True
            if other_got_through:
                self._learn("websocket", "failed")
        elif transport == "polling":
            self._sse_failures = 0  # polling fails too: the gateway is away, not SSE blocked; SSE again
        else:
            self._sse_failures += 1

    def opened(self, transport: Carrier) -> None:
        """A session opened (or moved) on ``transport``."""
        self.note(transport, "open")
        if transport in ("sse", "sse-poll"):
            if self._ws_refused:
                self._learn("websocket", "failed")
            self._sse_failures = 0
        elif transport == "polling":
            if self._sse_failures >= SSE_FAILURES:
                self._learn("sse", "failed")
        else:
            self.ws_works = True

    @staticmethod
    def at_engine_open(sse_opened: bool, sse_answered: bool, waited: bool) -> Literal["move", "take over", "wait"]:
        """WebSocket's engine opened beside an SSE attempt: what its namespace connect does.

        A session open on SSE moves (a resume). Otherwise the session starts on WebSocket when
        SSE is held back (its headers came, its open frame did not: a buffering proxy), failed,
        or did not answer within as long again as the engine took (``waited``); so the first
        usable session comes from whichever transport answers first.
        """
        if sse_opened:
            return "move"
        if sse_answered or waited:
            return "take over"
        return "wait"

    def buffered(self) -> None:
        """An SSE stream was held back by a proxy: poll on this network from now on."""
        self.note("sse", "buffered")
        self._learn("sse", "poll")

    def _learn(self, what: str, value: str) -> None:
        self.memory.note(self.url, what, value, self.remember)


class Driver:
    """What both drivers (asyncio and blocking) hold, whatever does their I/O: the session's
    state, the reconnect machine, the connect credential and the bounds."""

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        token: TokenSource,
        auth: dict[str, Any] | None,
        request_timeout: float,
        connect_timeout: float | None,
        backoff: Backoff | None,
    ) -> None:
        self.url = url.rstrip("/")
        # ``auth``: the namespace middleware's other fields (SSE: query parameters).
        self.auth = {k: v for k, v in (auth or {}).items() if k != "token"}
        self.token: TokenSource = token if token is not None else (auth or {}).get("token")
        self.state = ClientState(namespace=namespace)
        self.machine = Reconnector(self.state, backoff or Backoff())
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout

    @property
    def sid(self) -> str | None:
        return self.state.sid

    @property
    def backoff(self) -> Backoff:
        return self.machine.backoff

    @property
    def ended(self) -> SessionEnded | None:
        """Why the client stopped for good, once it has."""
        return self.machine.ended

    @property
    def attempt_timeout(self) -> float:
        """How long one step of a connection attempt may take: ``connect_timeout``, by default
        ``min(request_timeout, pingInterval + pingTimeout)``."""
        if self.connect_timeout is not None:
            return self.connect_timeout
        return min(self.request_timeout, self.machine.silence_limit)
