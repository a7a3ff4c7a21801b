"""A blocking client for threads and gevent (Locust monkey-patches everything).

The same guarantees as the asyncio clients, on the same pure core
(``rtclient.protocol``): only the I/O differs — httpx's sync client for SSE + POST,
python-socketio's ``Client`` for Socket.IO, threads (greenlets under gevent) for the
reader and the reconnect loop.

As there: the session key rides on every SSE request and every resume; ``token=`` may be
a callable asked before every connection attempt; after ``close {reconnect: false}``
(``replaced``) the client stops for good and requests raise ``SessionEnded``; a frame it
cannot use is skipped and counted, and a resume that cannot succeed starts a new session.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, overload

import httpx

from gateway.wire.errors import GatewayError

from ._bounds import CLOSE_BOUND, bounded_blocking
from ._engineio_fence import (
    abandon_blocking,
    allow_long_payloads,
    event_trigger,
    goodbye_blocking,
    replace_event_trigger,
)
from .protocol import (
    JSON_BODY,
    Backoff,
    Call,
    ClientEvent,
    Closing,
    ConnectionLost,
    Opened,
    ProtocolError,
    Recovery,
    RoomEvent,
    SessionEnded,
    SseFrame,
    SseParser,
    TransportChanged,
    UnusableStream,
    bearer,
    emit_meta,
    error_from_body,
    is_envelope,
    is_frame,
    presence_body,
    request_body,
    result_from_body,
    token_value,
    worth_logging,
)
from .reconnect import (
    Action,
    Attempt,
    AutoPlan,
    Carrier,
    Deliver,
    Driver,
    GiveUp,
    OpenSession,
    Rejoin,
    RetryAfter,
    Sleep,
)

if TYPE_CHECKING:
    import socketio

log = logging.getLogger("rtclient")
Listener = Callable[[ClientEvent], None]


class BlockingClient(Driver):
    """``BlockingClient(url, "/chat", transport="auto" | "sse" | "socketio" | "websocket" | "polling")``.

    ``auto`` (the default): as ``rtclient.AutoClient`` — SSE at once, the session moved to
    WebSocket when it opens beside it (after ``upgrade_delay`` s), SSE poll mode behind a
    buffering proxy, Socket.IO polling as the last resort; what failed is remembered per
    gateway URL for ``remember`` s. ``on_event`` gets a ``TransportChanged`` per carrier.

    Events reach ``on_event`` from a background thread (greenlet), once each, in order.
    ``mode`` is the SSE mode, as for ``rtclient.SseClient`` (``auto`` falls back to polling
    behind a buffering proxy). ``token``: a string or a callable returning one, asked before
    every connection attempt; ``auth``: the namespace middleware's other fields.
    What to do after a loss is ``Reconnector``'s (``rtclient.reconnect``) to decide; this
    class performs its actions with threads.

    Bounds, as ``rtclient.SseClient``'s: requests raise ``TimeoutError`` after
    ``request_timeout`` s; each step of a connection attempt gets ``connect_timeout`` s
    (default ``min(request_timeout, pingInterval + pingTimeout)``); ``drop`` and ``close``
    give each library call that lets go of the connection ``CLOSE_BOUND`` (2 s), then leave
    it to finish on its own thread (counted in ``state.stats.abandoned``).
    """

    def __init__(
        self,
        url: str,
        namespace: str = "/",
        *,
        transport: str = "auto",
        mode: str = "auto",
        buffer_timeout: float = 3.0,
        token: str | Callable[[], str | None] | None = None,
        auth: dict[str, Any] | None = None,
        on_event: Listener | None = None,
        request_timeout: float = 30.0,
        connect_timeout: float | None = None,
        backoff: Backoff | None = None,
        remember: float = 600.0,
        upgrade_delay: float = 0.0,
    ) -> None:
        if transport not in ("auto", "sse", "socketio", "websocket", "polling"):
            raise ValueError(f"unknown transport {transport!r}")
        if mode not in ("auto", "stream", "poll"):
            raise ValueError(f"mode must be auto, stream or poll, not {mode!r}")
        self.mode = mode
        self.buffer_timeout = buffer_timeout
        super().__init__(url, namespace, token=token, auth=auth, request_timeout=request_timeout,
                         connect_timeout=connect_timeout, backoff=backoff)
        self.transport = transport
        self.upgrade_delay = upgrade_delay  # auto: seconds before WebSocket is tried beside SSE
        self.on_event = on_event or (lambda event: None)
        self.call_handlers: dict[str, Callable[[Any], Any]] = {}
        self._connected = threading.Event()
        self._lost = threading.Event()
        self._opened = threading.Event()
        self._open_failure: ConnectionLost | None = None  # why the connection being opened is no good
        self._frames = threading.RLock()  # one frame at a time, whichever connection it came on
        self._io: _SseIO | _SocketIOIO | _AutoIO = (
            _AutoIO(self, remember) if transport == "auto" else _SseIO(self) if transport == "sse"
            else _SocketIOIO(self, None if transport == "socketio" else [transport])
        )
        self._supervisor: threading.Thread | None = None

    @property
    def transport_name(self) -> str:
        return self._io.name()

    @property
    def history(self) -> list[Attempt]:
        """``auto``: what was tried and how it went (empty for a fixed transport)."""
        return list(self._io.plan.history) if isinstance(self._io, _AutoIO) else []

    def connect(self) -> None:
        """Open the session; raises the gateway's typed error if it refuses (``rate_limited``
        is tried again after its ``retryAfter``, for up to ``request_timeout`` seconds).
        ``auto``: a failure for the network's sake is followed by the plan's next attempt
        (after a backoff delay) up to Socket.IO polling (``AutoPlan.connect_again``)."""
        attempts = 0
        while True:
            attempts += 1
            tried = self._io.plan.next() if isinstance(self._io, _AutoIO) else None
            try:
                return self._connect_once()
            except Exception as exc:
                if tried is None or not AutoPlan.connect_again(tried, exc, attempts):
                    raise
            time.sleep(self.backoff.next())

    def _connect_once(self) -> None:
        deadline = time.monotonic() + self.request_timeout
        refusals = 0
        while True:
            try:
                self._open(resume=False)
                break
            except GatewayError as exc:
                refusals += 1
                wait = self.machine.connect_retry(exc, refusals)
                if wait is None or time.monotonic() + wait > deadline:
                    raise
                time.sleep(wait)
        self.machine.opened()
        self._connected.set()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True, name="rtclient-supervisor")
        self._supervisor.start()

    def close(self) -> None:
        """End the session (after ``replaced``: only release this client's resources)."""
        owned = self.ended is None
        self._stop(SessionEnded("closed"))
        with contextlib.suppress(Exception):
            self._io.close(goodbye=owned, final=True)

    def drop(self) -> None:
        self._io.close(goodbye=False)
        self._lost.set()

    def join(self, room: str) -> dict[str, Any]:
        """Join ``room``; after a start over (a new session) the client joins it again."""
        self.machine.join(room)
        try:
            result: dict[str, Any] = self._request("join", {"room": room})
        except GatewayError:
            self.machine.join_refused(room)
            raise
        self.state.joined(room, result["offset"])
        return result

    def leave(self, room: str) -> dict[str, Any]:
        self.machine.leave(room)
        result: dict[str, Any] = self._request("leave", {"room": room})
        self.state.left(room)
        return result

    @overload
    def publish(
        self, room: str, data: Any = None, *, event: str = "message", include_self: bool = False,
        volatile: Literal[False] = False,
    ) -> dict[str, Any]: ...

    @overload
    def publish(
        self, room: str, data: Any = None, *, event: str = "message", include_self: bool = False,
        volatile: bool,
    ) -> dict[str, Any] | None: ...

    def publish(
        self, room: str, data: Any = None, *, event: str = "message", include_self: bool = False,
        volatile: bool = False,
    ) -> dict[str, Any] | None:
        """As ``rtclient.SseClient.publish``: ``volatile`` is sent once if connected (None, counted
        in ``state.stats.volatile_dropped``, if not)."""
        body = {"room": room, "event": event, "data": data, "includeSelf": include_self}
        if volatile:
            sent: dict[str, Any] | None = self._volatile("publish", body)
            return sent
        result: dict[str, Any] = self._outboxed("publish", body)
        return result

    def emit(self, event: str, data: Any = None, *, volatile: bool = False) -> Any:
        if volatile:
            return self._volatile("emit", {"event": event, "data": data})
        return self._outboxed("emit", {"event": event, "data": data})

    def presence(self, room: str, *, cursor: str | None = None) -> dict[str, Any]:
        """Who is in ``room``: ``{"room", "members", "next"}``, a page at a time (``cursor=next``)."""
        result: dict[str, Any] = self._request("presence", presence_body(room, cursor))
        return result

    # -- internals shared by both transports -------------------------------------------

    def _frame(self, name: str, data: Any, io: _SseIO | _SocketIOIO | None = None) -> None:
        with self._frames:
            opening = not self._opened.is_set()
            try:
                events = self.state.handle(name, data)
            except ProtocolError as exc:
                self._malformed(exc)
                events = []
            if isinstance(self._io, _AutoIO) and io is not None:
                kept = self._io.sort(io, events)
                if kept is None:
                    return
                events = kept
            self._settle(events, name, opening)

    def _settle(self, events: list[ClientEvent], name: str, opening: bool) -> None:
        if opening and not any(isinstance(event, Opened) for event in events):
            # The gateway's first frame is always the open.
            self._fail_open(UnusableStream(f"the first frame was not a usable open ({name!r:.80})"))
            return
        self._deliver(events)

    def _deliver(self, events: Iterable[ClientEvent]) -> None:
        for event in events:
            if isinstance(event, Opened):
                self._opened.set()
            elif isinstance(event, Closing):
                if self.machine.closing(event):
                    self._stop(SessionEnded(event.reason))
                self._lost.set()
            elif isinstance(event, Call):
                handler = self.call_handlers.get(event.event)
                if handler is not None:
                    threading.Thread(target=self._answer, args=(event, handler), daemon=True).start()
                continue
            try:
                self.on_event(event)
            except Exception:  # the application's bug must not break the stream (and its replay)
                log.exception("on_event raised on a %r event", event.kind)

    def _sse_frame(self, frame: SseFrame, io: _SseIO) -> None:
        try:
            data = self.state.decode_frame(frame)
        except ProtocolError as exc:
            self._malformed(exc)
            self._fail_open(UnusableStream(f"the first frame was not a usable open: {exc}"))
            return
        self._frame(frame.event, data, io)

    def _io_lost(self, io: _SseIO | _SocketIOIO, why: ConnectionLost) -> None:
        """``io``'s connection is gone (``auto``: unless it no longer carries, or a move takes over)."""
        if isinstance(self._io, _AutoIO) and not self._io.carrier_lost(io):
            return
        self._fail_open(why)
        self._lost.set()

    def _malformed(self, exc: ProtocolError) -> None:
        """A frame skipped (``ClientState`` counted it): logged, sparingly."""
        count = self.state.stats.malformed
        if worth_logging(count):
            log.warning("%s (%d malformed frames so far)", exc, count)

    def _fail_open(self, why: ConnectionLost) -> None:
        """The connection being opened will not give a usable open frame: say so at once."""
        if not self._opened.is_set():
            self._open_failure = why
            self._opened.set()

    def _answer(self, call: Call, handler: Callable[[Any], Any]) -> None:
        try:
            result = handler(call.data)
        except Exception:  # unanswered: the gateway's call times out, as for a lost ack
            log.exception("the handler of call %r raised", call.event)
            return
        with contextlib.suppress(ConnectionLost, GatewayError, SessionEnded, TimeoutError):
            self._io.send("ack", {"ackId": call.ack_id, "result": result}, self.request_timeout)

    def _stop(self, why: SessionEnded) -> None:
        """Stop for good: no reconnect; pending and later requests raise ``why``."""
        self.machine.stop(why)
        self._lost.set()
        self._connected.set()  # wakes the requests waiting for a connection: they see ``ended``

    def _token(self) -> str | None:
        return token_value(self.token)  # type: ignore[no-any-return]  # a sync callable's str

    def _outboxed(self, kind: Literal["publish", "emit"], body: dict[str, Any]) -> Any:
        entry = self.state.outbox.add(kind, body)
        try:
            result = self._request(kind, entry.body)
        except BaseException:
            self.state.outbox.failed(entry)
            raise
        self.state.outbox.acked(entry, result)
        return result

    def _volatile(self, kind: Literal["publish", "emit"], body: dict[str, Any]) -> Any:
        """Send once on the connection there is, or not at all (None, counted)."""
        if self.ended is not None:
            raise self.ended
        if self._connected.is_set():
            try:
                return self._io.send(kind, {**body, "volatile": True}, self.request_timeout)
            except ConnectionLost as exc:
                if not isinstance(exc, _Superseded):
                    self._connected.clear()
                    self._lost.set()
        self.state.stats.volatile_dropped += 1
        return None

    def _request(self, kind: str, body: dict[str, Any], *, wait: bool = True) -> Any:
        """Send until acked: after a lost connection, again (same clientEventId) once resumed.
        Without ``wait``, a lost connection raises ``ConnectionLost`` rather than waiting for
        the reconnect (the supervisor's own rejoins)."""
        deadline = time.monotonic() + self.request_timeout
        refusals = 0  # in a row, for the growing jitter of rate_limited retries
        while True:
            if self.ended is not None:
                raise self.ended
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{kind} not acknowledged within {self.request_timeout} s")
            # In slices: ``_stop`` sets ``_connected`` to wake waiters, a slice bounds any race.
            if wait and not self._connected.wait(min(left, 1.0)):
                continue
            if self.ended is not None:
                raise self.ended
            try:
                return self._io.send(kind, body, max(0.01, deadline - time.monotonic()))
            except (ConnectionLost, GatewayError) as exc:
                step = self.machine.request_step(exc, refusals + 1)
                if isinstance(step, GiveUp):
                    raise step.error from None
                if isinstance(step, RetryAfter):
                    refusals += 1
                    time.sleep(min(step.seconds, max(0.0, deadline - time.monotonic())))
                    continue
                refusals = 0
                if not isinstance(exc, _Superseded):  # not a connection already replaced by a new one
                    self._connected.clear()
                    self._lost.set()
                if not wait:
                    raise ConnectionLost(f"{kind} lost its connection: {exc!r}") from None

    def _open(self, resume: bool) -> None:
        if not isinstance(self._io, _AutoIO):
            return self._open_on(resume)
        try:
            self._open_on(resume)
        except Exception as exc:
            self._io.failed(exc)
            raise
        self._io.opened()
        return None

    def _open_on(self, resume: bool) -> None:
        self._lost.clear()
        self._expect_open()
        self._io.open(resume)
        detect = self._io.detects_buffering()
        if not self._opened.wait(self.buffer_timeout if detect else self.attempt_timeout):
            self._io.close(goodbye=False)
            sse = self._io.sse if isinstance(self._io, _AutoIO) else self._io
            if not detect or not isinstance(sse, _SseIO):
                raise ConnectionLost("no open frame")
            log.warning("the SSE stream looks buffered by a proxy; polling instead")
            sse.polling = True
            return self._open_on(resume)
        if self._open_failure is not None:
            self._io.close(goodbye=False)
            raise self._open_failure

    def _expect_open(self) -> None:
        """A connection is being opened: its reader settles ``_opened`` (and ``_open_failure``)."""
        self._opened.clear()
        self._open_failure = None

    def _supervise(self) -> None:
        while self.ended is None:
            self._lost.wait()
            if self.ended is None:
                self._recover()
        why = self.machine.ended
        if why is not None and why.reason != "closed":
            self._io.close(goodbye=False)  # ``replaced``: let go, say nothing

    def _recover(self) -> None:
        """The connection is lost: run the machine's actions until it is back (or stopped)."""
        self._connected.clear()
        self._io.close(goodbye=False)
        actions = deque(self.machine.lost())
        while actions:
            actions.extend(self._perform(actions.popleft()))
        if self.ended is None and not self._lost.is_set():
            self._connected.set()

    def _perform(self, action: Action) -> list[Action]:
        """Do what the machine asked; what it says next."""
        if isinstance(action, Sleep):
            time.sleep(action.seconds)
            return self.machine.timer_fired()
        if isinstance(action, OpenSession):
            try:
                self._open(action.resume)
            except Exception as exc:
                return self.machine.failed(exc)
            return self.machine.opened()
        if isinstance(action, Rejoin):
            for room in action.rooms:
                try:
                    self._request("join", {"room": room}, wait=False)
                except (ConnectionLost, TimeoutError) as exc:
                    log.info("rejoining %s failed: %r", room, exc)
                    self._io.close(goodbye=False)
                    return self.machine.lost()
                except GatewayError as exc:  # e.g. no longer allowed: say so, keep the others
                    log.warning("could not rejoin %s: %s", room, exc)
                    self.machine.join_refused(room)
            return self.machine.rejoined()
        if isinstance(action, Deliver):
            self._deliver(action.events)
            return []
        self._stop(SessionEnded(action.reason))  # Stop
        return []


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client: httpx builds one per client otherwise (~23 ms of CPU
    each, even for http://), which shows up as connect time when Locust spawns users."""
    return ssl.create_default_context()


class _SseIO:
    def __init__(self, client: BlockingClient) -> None:
        self.c = client
        self.http = httpx.Client(base_url=client.url, timeout=client.request_timeout, verify=_tls())
        self._response: httpx.Response | None = None
        self.polling = client.mode == "poll"

    def name(self) -> str:
        return "sse-poll" if self.polling else "sse"

    def detects_buffering(self) -> bool:
        return self.c.mode == "auto" and not self.polling

    def open(self, resume: bool) -> None:
        response = self._get(resume)
        self._response = response
        threading.Thread(target=self._read, args=(response,), daemon=True, name="rtclient-sse").start()

    def _get(self, resume: bool) -> httpx.Response:
        c = self.c
        params = {"namespace": c.state.namespace, **{k: v for k, v in c.auth.items() if isinstance(v, str)},
                  **({"mode": "poll"} if self.polling else {})}
        headers = bearer(c._token())  # asked on every attempt (and poll)
        if resume and c.state.cursor:
            headers["Last-Event-ID"] = c.state.cursor
        # Reads (the headers, then every chunk) wait at most the gateway's silence limit once
        # its ping settings are known, one attempt's bound before.
        read = c.machine.silence_limit if c.state.sid is not None else c.attempt_timeout
        request = self.http.build_request(
            "GET", "/sse/connect", params=params, headers=headers,
            timeout=httpx.Timeout(c.attempt_timeout, read=read),
        )
        try:
            response = self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise ConnectionLost(repr(exc)) from None
        if response.status_code != 200:
            body = response.read()
            response.close()
            raise error_from_body(body)
        return response

    def _read(self, response: httpx.Response) -> None:
        why: ConnectionLost = UnusableStream("the stream ended before its open frame")
        try:
            while True:
                self._consume(response)
                if not self.polling or self._response is not response or self.c.ended is not None:
                    break
                response = self._response = self._get(resume=True)  # the next poll, at once
        except (httpx.HTTPError, OSError, GatewayError, ConnectionLost) as exc:
            why = ConnectionLost(f"the stream broke before its open frame: {exc!r}")
        finally:
            response.close()
            if self._response is response:
                self.c._io_lost(self, why)

    def _consume(self, response: httpx.Response) -> None:
        parser = SseParser()
        try:
            for chunk in response.iter_raw():
                if self._response is not response:
                    return  # let go of (dropped, or replaced by the next poll): not ours any more
                for frame in parser.feed(chunk):
                    if self._response is not response:
                        return
                    self.c._sse_frame(frame, self)
        finally:
            response.close()

    def send(self, kind: str, body: dict[str, Any], within: float) -> Any:
        if self.c.ended is not None:
            raise self.c.ended
        sid = self.c.state.sid
        if sid is None:
            raise ConnectionLost("no session")
        try:
            # request_body: bytes as binary markers; JSON_BODY: the content type the gateway requires.
            response = self.http.post(f"/sse/sessions/{sid}/{kind}", content=request_body(body),
                                      headers={**self.c.state.session_headers(), **JSON_BODY}, timeout=within)
        except httpx.TimeoutException:
            raise TimeoutError(f"{kind} not acknowledged within {self.c.request_timeout} s") from None
        except httpx.TransportError as exc:
            raise ConnectionLost(repr(exc)) from None
        if response.status_code >= 400:
            raise error_from_body(response.content)
        return result_from_body(response.content)

    def close(self, goodbye: bool, final: bool = False) -> None:
        sid, stats = self.c.state.sid, self.c.state.stats
        if goodbye and sid is not None:
            headers = self.c.state.session_headers()
            bounded_blocking(lambda: self.http.delete(f"/sse/sessions/{sid}", headers=headers, timeout=CLOSE_BOUND),
                             CLOSE_BOUND, "the goodbye (DELETE)", stats)
        response, self._response = self._response, None
        if response is not None:
            bounded_blocking(response.close, CLOSE_BOUND, "closing an HTTP response", stats)
        if final:
            bounded_blocking(self.http.close, CLOSE_BOUND, "closing the HTTP client", stats)


class _Superseded(ConnectionLost):
    """The request's connection was lost and has already been replaced: send it again, and
    leave the new connection alone."""


def _attachment_count(packet: str) -> int:
    """How many binary attachments follow a Socket.IO BINARY_EVENT/BINARY_ACK packet (``61-/chat,...``)."""
    count, dash, _ = packet[1:12].partition("-")
    return int(count) if dash and count.isdigit() else 0


class _InOrder:
    """Socket.IO messages handled one at a time, in the order they arrived.

    python-socketio's threaded client hands each Engine.IO message to a thread of its own
    (``engineio.Client._receive_packet`` calls ``_trigger_event("message", ..., run_async=True)``),
    so a burst of frames (an ``open`` then its replay) is handled in whatever order those
    threads run: a replayed event before the ``open``, or a later offset before an earlier one,
    which then looks like a duplicate and is lost. Here each message takes a ticket in the read
    loop (arrival order) and its thread waits for its turn. Acks to our requests skip the line
    (a listener may make a request and wait for its ack), and a server call gives its turn up
    before the application's handler runs (``release``), for the same reason.

    Binary packets: python-socketio reads the messages after a BINARY_EVENT or BINARY_ACK header
    as its attachments, so the header and its attachments go to it together, as one item (in
    line, or skipping it for an ack), and no other message is decoded meanwhile: decoding is one
    at a time (``decoded`` ends a message's decoding once python-socketio calls our handlers,
    before any application code runs, so an ack still overtakes a waiting listener).

    Reaches into python-engineio (4.x) through ``rtclient._engineio_fence``. If a version
    renames what it needs, ``install`` leaves the client as it is (in order as python-socketio
    makes it), and tests/test_bad_frames.py's blocking Socket.IO cases fail.
    """

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._tickets = itertools.count()
        self._served = 0
        self._held = threading.local()
        self._decoding = threading.Condition()
        self._busy = False  # python-socketio is decoding a message (or a binary packet's messages)

    def install(self, eio: Any) -> None:
        found = event_trigger(eio)
        if found is None:
            return
        trigger, handlers = found
        group: list[Any] = []  # a binary packet's header and the attachments read so far
        expected = 0  # how many attachments its header announced

        def in_order(event: str, *args: Any, **kwargs: Any) -> Any:
            nonlocal expected
            handler = handlers.get(event)
            if event != "message" or not kwargs.get("run_async") or handler is None:
                return trigger(event, *args, **kwargs)
            data = args[0] if args else None
            if group:
                group.append(data)
                if len(group) <= expected:
                    return None  # more attachments to come: read in this loop, in order
                messages = group.copy()
                group.clear()
            elif isinstance(data, str) and data[:1] in ("5", "6") and (count := _attachment_count(data)):
                group.append(data)
                expected = count
                return None
            else:
                messages = [data]
            decode = functools.partial(self._decode, handler, messages)
            if isinstance(messages[0], str) and messages[0][:1] in ("3", "6"):  # ACK, BINARY_ACK
                return eio.start_background_task(decode)
            return eio.start_background_task(self._run, next(self._tickets), decode)

        replace_event_trigger(eio, in_order)

    def _run(self, ticket: int, handle: Callable[[], None]) -> None:
        with self._turn:
            self._turn.wait_for(lambda: self._served == ticket)
        self._held.ticket = ticket
        try:
            handle()
        finally:
            self.release()

    def _decode(self, handler: Callable[..., Any], messages: list[Any]) -> None:
        with self._decoding:
            self._decoding.wait_for(lambda: not self._busy)
            self._busy = True
        self._held.decoding = True
        try:
            for message in messages:
                handler(message)
        except Exception:  # as engineio does: one message's failure is logged, the rest go on
            log.exception("a Socket.IO message handler raised")
        finally:
            self.decoded()

    def decoded(self) -> None:
        """python-socketio has decoded the message being handled (idempotent): the next may be."""
        if not getattr(self._held, "decoding", False):
            return
        self._held.decoding = False
        with self._decoding:
            self._busy = False
            self._decoding.notify_all()

    def release(self) -> None:
        """The running message's turn is over (idempotent): the next message may be handled."""
        if getattr(self._held, "ticket", None) is None:
            return
        self._held.ticket = None
        with self._turn:
            self._served += 1
            self._turn.notify_all()


class _SocketIOIO:
    def __init__(self, client: BlockingClient, transports: list[str] | None = None) -> None:
        self.c = client
        self.sio: socketio.Client | None = None
        self.transports = transports

    def name(self) -> str:
        return self.sio.transport() if self.sio is not None and self.sio.connected else "?"

    def detects_buffering(self) -> bool:
        return False

    def open(self, resume: bool) -> None:
        import socketio  # here, not at the top: ``import rtclient.blocking`` loads no Socket.IO library

        allow_long_payloads()  # a resume's replay is often more than a polling response's 16 packets
        c, ns = self.c, self.c.state.namespace
        within = c.attempt_timeout
        # python-engineio's own request_timeout bounds its handshake and each POST.
        sio = socketio.Client(reconnection=False, request_timeout=within)
        order = _InOrder()
        order.install(sio.eio)
        refused: list[Any] = []

        def any_event(event: str, *args: Any) -> Any:
            order.decoded()  # python-socketio is done with the message: the next may be decoded
            data = args[0] if args else None
            if self.sio is not sio:
                return None  # a connection this client already let go of (e.g. its ``replaced``)
            if is_frame(event, data):
                c._frame(event, data, self)
                return None
            order.release()  # a server call: the application's handler may take its time
            handler = c.call_handlers.get(event)
            if handler is None:
                return None
            try:
                return handler(data)
            except Exception:  # unanswered: the gateway's call times out
                log.exception("the handler of call %r raised", event)
                return None

        # python-socketio hands an event named "connect", "connect_error" or "disconnect" to
        # these handlers too (its catch-all skips them): a room event by such a name is skipped.
        def connected(*args: Any) -> None:
            order.decoded()
            if args:  # a real connect has no argument
                c._frame("connect", args[0], self)

        def connect_error(data: Any = None, *args: Any) -> None:
            order.decoded()
            if is_envelope(data):
                c._frame("connect_error", data, self)
            else:
                refused.append(data)

        def disconnected(*args: Any) -> None:
            order.decoded()
            if args and not isinstance(args[0], str):  # a real one has no argument or a reason string
                c._frame("disconnect", args[0], self)
            elif self.sio is sio:
                c._io_lost(self, UnusableStream("disconnected before the open frame"))

        for event, handler in (("*", any_event), ("connect", connected), ("connect_error", connect_error),
                               ("disconnect", disconnected)):
            sio.on(event, handler, namespace=ns)
        token = c._token()  # asked on every attempt
        with c._frames:  # the positions, while another connection may be moving them
            auth = {**c.auth, **({"token": token} if token is not None else {}),
                    **(c.state.resume_auth() if resume else {})}
        self.sio = sio
        try:
            sio.connect(c.url, namespaces=[ns], transports=self.transports, auth=auth or None,
                        wait_timeout=within)
        except socketio.exceptions.ConnectionError as exc:
            self.sio = None
            goodbye_blocking(sio, c.state.stats)  # a half-made connection
            if refused and isinstance(refused[0], dict) and isinstance(refused[0].get("data"), dict):
                raise error_from_body(refused[0]["data"]) from None
            raise ConnectionLost(str(exc)) from None

    def send(self, kind: str, body: dict[str, Any], within: float) -> Any:
        import socketio

        if self.c.ended is not None:
            raise self.c.ended
        sio = self.sio
        if sio is None or not sio.connected:
            raise ConnectionLost("not connected")
        if kind == "ack":
            return None
        args: Any
        if kind == "emit":
            event, args = body["event"], (body.get("data"), emit_meta(body))
        else:
            event, args = kind, body
        # Wait for the ack or the connection's loss, whichever comes first: python-socketio
        # would keep waiting for an ack that can no longer come.
        answered = threading.Event()
        replies: list[Any] = []

        def on_ack(*reply: Any) -> None:
            replies.append(reply[0] if len(reply) == 1 else list(reply))
            answered.set()

        try:
            sio.emit(event, args, namespace=self.c.state.namespace, callback=on_ack)
        except (socketio.exceptions.BadNamespaceError, socketio.exceptions.DisconnectedError) as exc:
            raise ConnectionLost(repr(exc)) from None
        deadline = time.monotonic() + within
        while not answered.wait(0.05):
            # ``_lost`` may have been set and cleared again by a quick reconnect meanwhile:
            # the connection it was sent on being gone is what says the ack cannot come.
            replaced = self.sio is not sio
            if replaced:
                raise _Superseded("the connection was replaced before the ack")
            if not sio.connected or self.c._lost.is_set() or time.monotonic() > deadline:
                raise ConnectionLost("connection lost before the ack")
        reply = replies[0]
        if not isinstance(reply, dict) or "ok" not in reply:
            raise ProtocolError(f"unexpected ack {reply!r:.200}")
        if not reply["ok"]:
            raise error_from_body(reply["error"])
        return reply["result"]

    def close(self, goodbye: bool, final: bool = False) -> None:
        sio, self.sio = self.sio, None
        if sio is None:
            return
        if goodbye:
            goodbye_blocking(sio, self.c.state.stats)
        else:
            abandon_blocking(sio, self.c.state.stats)


class _AutoIO:
    """``transport="auto"`` on threads: ``AutoPlan``'s decisions, as ``rtclient.AutoClient``
    makes them on asyncio (see there). The session opens on SSE (or where the plan says);
    once it is open, WebSocket is tried on a thread of its own and, when its open frame comes,
    carries the session; the SSE stream is let go of. Every frame of every connection goes
    through ``sort`` under the client's frame lock: one ``ClientState``, whose offsets drop
    the overlap of a move."""

    def __init__(self, client: BlockingClient, remember: float) -> None:
        self.c = client
        self.plan = AutoPlan(client.url, remember)
        self.sse = _SseIO(client)
        self.current: _SseIO | _SocketIOIO = self.sse
        self.moving: _SocketIOIO | None = None  # resuming the session on WebSocket, not yet its carrier
        self.trying: Carrier = "sse"  # what ``current`` was opened as
        self.shown: str | None = None
        self._migrated: _SocketIOIO | None = None  # arrived by a move: its recovery frame is no news
        self._old_lost = False  # the carrier was lost while a move was under way
        self._moved = threading.Event()
        # As ``AutoClient``: a move starts when no request is in flight and no request starts
        # until it ends (behind a balancer, the old connection's node may not be the new one's).
        self._requests = threading.Condition()
        self._in_flight = 0
        self._moving_now = False

    def name(self) -> str:
        return self.shown or "?"

    def detects_buffering(self) -> bool:
        return self.current.detects_buffering()

    def open(self, resume: bool) -> None:
        self._stop_moving()
        self.trying = self.plan.next()
        self.plan.note(self.trying, "trying")
        if self.trying in ("websocket", "polling"):
            self.current = _SocketIOIO(self.c, [self.trying])
        else:
            self.current = self.sse
            self.sse.polling = self.sse.polling or self.trying == "sse-poll"
        self.current.open(resume)

    def failed(self, error: BaseException) -> None:
        self.plan.failed(self.trying, error)

    def opened(self) -> None:
        """The session opened on ``current``: the plan learns, the application is told, and
        from SSE, WebSocket is tried beside it."""
        transport = self.trying
        if self.current is self.sse and self.sse.polling and transport == "sse":
            self.plan.buffered()
            transport = "sse-poll"
        self.plan.opened(transport)
        self._show(transport)
        if self.current is self.sse and self.plan.probe_beside(transport):
            threading.Thread(target=self._move, daemon=True, name="rtclient-auto-ws").start()

    def _show(self, transport: str) -> None:
        with self.c._frames:
            if transport != self.shown:
                self.shown = transport
                self.c._deliver([TransportChanged("transport", transport)])

    # -- moving to WebSocket ----------------------------------------------------------------

    def _move(self) -> None:
        c = self.c
        time.sleep(c.upgrade_delay)
        link = _SocketIOIO(c, ["websocket"])
        with c._frames:
            if c.ended is not None or self.current is not self.sse:
                return
            self.moving, self._migrated, self._old_lost = link, link, False
            self._moved.clear()
        self.plan.note("websocket", "trying")
        reached = False  # the WebSocket handshake got through: a later loss is not a refusal
        with self._requests:
            self._moving_now = True
            self._requests.wait_for(lambda: not self._in_flight, c.attempt_timeout)
        try:
            link.open(resume=True)  # its positions: taken now the requests under way are answered
            reached = True
            if not self._moved.wait(c.attempt_timeout) or not self._carries(link):
                raise ConnectionLost("no open frame on WebSocket")
        except Exception as exc:
            self.plan.failed("websocket", exc, other_got_through=True, reached=reached)
            with c._frames:
                lost = self.moving is link and self._old_lost
                if self.moving is link:
                    self.moving = self._migrated = None
            link.close(goodbye=False)
            if lost:  # the carrier was lost while moving: reconnect now
                c._lost.set()
        finally:
            with self._requests:
                self._moving_now = False
                self._requests.notify_all()

    def sort(self, io: _SseIO | _SocketIOIO, events: list[ClientEvent]) -> list[ClientEvent] | None:
        """A frame's events from ``io`` (under the frame lock): what the client settles, or None."""
        if io is self.moving:
            if not any(isinstance(e, Opened) for e in events):
                return None  # the first frame is the open; anything else: the move fails (timeout)
            self._promote(io)
            events = [e for e in events if not isinstance(e, Opened)]
        elif io is not self.current:
            # Let go of: its control frames no longer count, but its room events do, as in
            # ``AutoClient``: the state has already taken their offsets, so the carrier's copies
            # of them will be dropped as duplicates — dropping these too would lose them.
            return [e for e in events if isinstance(e, RoomEvent)] or None
        elif self.moving is not None:
            # Our own move took the session: the close {replaced} on the old connection is expected.
            events = [e for e in events if not (isinstance(e, Closing) and e.reason == "replaced")]
        if io is self._migrated and any(isinstance(e, Recovery) for e in events):
            self._migrated = None
            events = [e for e in events if not (isinstance(e, Recovery) and e.complete and not e.gaps)]
        return events

    def _carries(self, io: _SseIO | _SocketIOIO) -> bool:
        return self.current is io

    def _promote(self, link: _SocketIOIO) -> None:
        old, self.current, self.moving, self.trying, self._old_lost = self.current, link, None, "websocket", False
        self.plan.note("websocket", "moved", self.shown or "")
        self.plan.opened("websocket")
        # Its stream gets close {replaced}: expected, and ignored as it no longer carries.
        threading.Thread(target=old.close, args=(False,), daemon=True, name="rtclient-let-go").start()
        self._moved.set()
        self.shown = "websocket"
        self.c._deliver([TransportChanged("transport", "websocket")])

    def carrier_lost(self, io: _SseIO | _SocketIOIO) -> bool:
        """Whether ``io``'s loss is the session's: not when it no longer carries, nor while a
        move is under way (that move takes the session, or reconnects if it fails)."""
        with self.c._frames:
            if io is self.moving:
                self._moved.set()  # the mover sees it is not the carrier, and gives up
                return False
            if io is not self.current:
                return False
            if self.moving is not None:
                self._old_lost = True
                return False
            return True

    def _stop_moving(self) -> None:
        with self.c._frames:
            moving, self.moving = self.moving, None
        if moving is not None:
            moving.close(goodbye=False)

    # -- the carrier's --------------------------------------------------------------------

    def send(self, kind: str, body: dict[str, Any], within: float) -> Any:
        with self._requests:
            if not self._requests.wait_for(lambda: not self._moving_now, within):
                raise ConnectionLost("a move to WebSocket did not end in time")
            self._in_flight += 1
        try:
            return self.current.send(kind, body, within)
        finally:
            with self._requests:
                self._in_flight -= 1
                self._requests.notify_all()

    def close(self, goodbye: bool, final: bool = False) -> None:
        self._stop_moving()
        self.current.close(goodbye, final)
        if final and self.current is not self.sse:
            self.sse.close(goodbye=False, final=True)
