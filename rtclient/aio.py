"""asyncio clients: SSE + POST (``SseClient``) and Socket.IO (``SocketIOClient``).

Both add to their transport what at-least-once needs: reconnect with backoff,
resume from the last offsets, an outbox retransmitted until acked, each room event
handed to the application once and in order, and gaps surfaced as ``Gap`` events.

The session's private key (from ``open``) proves ownership on every resume and every SSE
request. ``token=`` may be a callable (sync or async), asked before every connection
attempt: after ``close {reason: "token_expired"}`` the client resumes with a fresh token.
After ``close {reconnect: false}`` (``replaced``: another connection took the session over)
the client stops for good; pending and later requests raise ``SessionEnded``.

A frame the client cannot use is skipped and counted (``state.stats.malformed``, logged
sparingly), never a reconnect: a bad event in a room's log comes back with every replay.
A listener or call handler that raises is logged, not let out into the reader. A resume
refused for its positions (``bad_last_event_id``, ``offset_from_future``), or answered
``UNUSABLE_RESUMES`` times in a row with no usable ``open`` frame, starts a new session
(with ``Gap`` events) rather than resuming for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Literal, overload

import httpx

from gateway.wire.errors import GatewayError

from ._bounds import CLOSE_BOUND, bounded, let_go, reap
from ._engineio_fence import abandon, allow_long_payloads
from ._engineio_fence import goodbye as say_goodbye
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
    SessionEnded,
    SseParser,
    TokenSource,
    TransportChanged,
    UnusableStream,
    atoken_value,
    bearer,
    emit_meta,
    error_from_body,
    is_envelope,
    is_frame,
    presence_body,
    request_body,
    result_from_body,
    worth_logging,
)
from .reconnect import (
    PROBE_LATEST,
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

__all__ = ["AutoClient", "SocketIOClient", "SseClient", "abandon", "make_client"]

log = logging.getLogger("rtclient")


class _Client(Driver):
    """Reconnect, resume, outbox and delivery, over a transport a subclass provides.

    What to do after a loss is ``Reconnector``'s (``rtclient.reconnect``) to decide; this
    class performs its actions on asyncio.

    Bounds: ``join``, ``leave``, ``publish``, ``emit`` raise ``TimeoutError`` after
    ``request_timeout`` s (retries and reconnects included). Each connection attempt (the
    first ``connect`` and every reconnect) gets ``connect_timeout`` s for its handshake and
    again for its ``open`` frame; by default ``min(request_timeout, pingInterval + pingTimeout)``,
    the gateway's own limit for a silent peer, so an attempt lost in a proxy cut is given up
    in seconds, not waited out. ``connect`` retries a ``rate_limited`` refusal for up to
    ``request_timeout`` s more. ``drop`` and ``close`` let go of the connection within a few
    ``CLOSE_BOUND`` (2 s) steps: a library call that does not finish in its step is left
    behind and counted in ``state.stats.abandoned``. Every call honours cancellation.
    """

    _opened: asyncio.Future[Opened] | None  # the connect waiting for its open frame

    def __init__(
        self,
        url: str,
        namespace: str = "/",
        *,
        token: TokenSource = None,
        auth: dict[str, Any] | None = None,
        request_timeout: float = 30.0,
        connect_timeout: float | None = None,
        backoff: Backoff | None = None,
        queue_size: int = 10_000,
    ) -> None:
        super().__init__(url, namespace, token=token, auth=auth, request_timeout=request_timeout,
                         connect_timeout=connect_timeout, backoff=backoff)
        self._queue: asyncio.Queue[ClientEvent] = asyncio.Queue(queue_size)
        self._listeners: dict[str, list[Callable[[ClientEvent], Any]]] = {}
        self._call_handlers: dict[str, Callable[[Any], Any]] = {}
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._stopped = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()  # server calls being answered
        self._letting_go: set[asyncio.Task[None]] = set()  # connections let go of, in the background
        self._owner: AutoClient | None = None  # the auto client this one carries a session for
        self.dropped = 0  # events the application's queue had no room for

    # -- public API ----------------------------------------------------------------

    @property
    def transport_name(self) -> str:
        return "?"

    async def connect(self) -> Opened:
        """Open the session; raises the gateway's typed error if it refuses (``rate_limited``
        is tried again after its ``retryAfter``, for up to ``request_timeout`` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        refusals = 0
        while True:
            try:
                opened = await self._open(resume=False)
                break
            except GatewayError as exc:
                refusals += 1
                wait = self.machine.connect_retry(exc, refusals)
                if wait is None or loop.time() + wait > deadline:
                    raise
                await asyncio.sleep(wait)
        self.machine.opened()
        self._connected.set()
        self._supervisor = asyncio.create_task(self._supervise(), name="rtclient-supervisor")
        return opened

    async def close(self) -> None:
        """End the session for good (the gateway releases its rooms).

        After a ``replaced`` close the session belongs to another connection: nothing is
        said to the gateway then, only this client's resources are released.
        """
        owned = self.ended is None
        self._stop(SessionEnded("closed"))
        await reap(self._supervisor, CLOSE_BOUND, "the reconnect supervisor", self.state.stats)
        with contextlib.suppress(Exception):
            await self._close_connection(goodbye=owned)
        await self._release()
        self._connected.clear()

    async def drop(self) -> None:
        """Lose the connection without ending the session, as a network failure would."""
        await self._close_connection(goodbye=False)
        self._lost.set()

    async def join(self, room: str) -> dict[str, Any]:
        """Join ``room``; after a start over (a new session) the client joins it again."""
        self.machine.join(room)
        try:
            result: dict[str, Any] = await self._request("join", {"room": room})
        except GatewayError:
            self.machine.join_refused(room)
            raise
        self.state.joined(room, result["offset"])
        return result

    async def leave(self, room: str) -> dict[str, Any]:
        self.machine.leave(room)
        result: dict[str, Any] = await self._request("leave", {"room": room})
        self.state.left(room)
        return result

    @overload
    async def publish(
        self, room: str, data: Any = None, *, event: str = "message", include_self: bool = False,
        volatile: Literal[False] = False,
    ) -> dict[str, Any]: ...

    @overload
    async def publish(
        self, room: str, data: Any = None, *, event: str = "message", include_self: bool = False,
        volatile: bool,
    ) -> dict[str, Any] | None: ...

    async def publish(
        self, room: str, data: Any = None, *, event: str = "message", include_self: bool = False,
        volatile: bool = False,
    ) -> dict[str, Any] | None:
        """Publish a room event; returns the ack ``{"room", "offset"}`` once it is logged.

        ``volatile``: not logged, not retried, dropped by the gateway for members not ready for
        it; sent once if connected, and then answered ``{"room", "volatile": True}``. Without a
        connection (or losing it under the request) it returns None, counted in
        ``state.stats.volatile_dropped``."""
        body = {"room": room, "event": event, "data": data, "includeSelf": include_self}
        if volatile:
            sent: dict[str, Any] | None = await self._volatile("publish", body)
            return sent
        result: dict[str, Any] = await self._outboxed("publish", body)
        return result

    async def emit(self, event: str, data: Any = None, *, volatile: bool = False) -> Any:
        """Send an application event; returns its handler's return value. ``volatile``: sent once
        if connected, never retried nor deduplicated (None, counted, when it could not be sent)."""
        if volatile:
            return await self._volatile("emit", {"event": event, "data": data})
        return await self._outboxed("emit", {"event": event, "data": data})

    async def presence(self, room: str, *, cursor: str | None = None) -> dict[str, Any]:
        """Who is in ``room``, on every node: ``{"room", "members": [{"sid", "user", "claims"}],
        "next"}``, a page at a time; pass ``next`` as ``cursor`` for the next page (None: the last)."""
        result: dict[str, Any] = await self._request("presence", presence_body(room, cursor))
        return result

    def on(self, kind: str, listener: Callable[[ClientEvent], Any]) -> None:
        """Call ``listener`` for each event of ``kind`` (``event``, ``gap``, ``recovery``, ``open``, ``close``)."""
        self._listeners.setdefault(kind, []).append(listener)

    def on_call(self, event: str, handler: Callable[[Any], Any]) -> None:
        """Answer the server's ``call(event)`` with ``handler(data)`` (sync or async)."""
        self._call_handlers[event] = handler

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Every event, in order; ends after a ``Closing`` that does not reconnect."""
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, Closing) and not event.reconnect:
                return

    async def next_event(self, timeout: float = 10.0) -> ClientEvent:
        async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can lose a got event
            return await self._queue.get()

    # -- delivery --------------------------------------------------------------------

    def _settle_open(self, events: list[ClientEvent], frame: str) -> bool:
        """The gateway's first frame is always the open: settle the pending connect with it.

        False when it was not a usable ``open`` (the connect then fails with ``UnusableStream``).
        """
        assert self._opened is not None
        opened = [e for e in events if isinstance(e, Opened)]
        if opened:
            self._opened.set_result(opened[0])
            return True
        self._opened.set_exception(UnusableStream(f"the first frame was not a usable open ({frame!r:.80})"))
        return False

    def _malformed(self, exc: ProtocolError) -> None:
        """A frame skipped (``ClientState`` counted it): logged, sparingly."""
        count = self.state.stats.malformed
        if worth_logging(count):
            log.warning("%s (%d malformed frames so far)", exc, count)

    def _deliver(self, events: Iterable[ClientEvent]) -> None:
        if self._owner is not None:
            self._owner._carried(self, list(events))
            return
        for event in events:
            if isinstance(event, Call):
                task = asyncio.create_task(self._answer(event))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
                continue
            if isinstance(event, Closing):
                if self.machine.closing(event):
                    self._stop(SessionEnded(event.reason))
                self._lost.set()
            for listener in self._listeners.get(event.kind, ()):
                try:
                    listener(event)
                except Exception:  # the application's bug must not break the stream (and its replay)
                    log.exception("a %r listener raised", event.kind)
            try:
                self._queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1
                log.warning("event queue full: %s dropped (read events() or use on())", event.kind)

    async def _answer(self, call: Call) -> None:
        handler = self._call_handlers.get(call.event)
        if handler is None:
            return
        try:
            result = handler(call.data)
            if inspect.isawaitable(result):
                result = await result
        except Exception:  # unanswered: the gateway's call times out, as it would for a lost ack
            log.exception("the handler of call %r raised", call.event)
            return
        if self.ended is not None:
            return
        with contextlib.suppress(ConnectionLost, GatewayError):
            await self._send("ack", {"ackId": call.ack_id, "result": result})

    def _let_go_later(self, closing: Coroutine[Any, Any, None]) -> None:
        """Let go of a connection in the background (bounded all the same): the caller is being
        cancelled, and must not wait in its ``except``, where a second cancellation cannot reach it."""
        task = asyncio.ensure_future(closing)
        self._letting_go.add(task)
        task.add_done_callback(self._letting_go.discard)

    def _lose(self) -> None:
        """This client's connection is lost (a connection of an ``AutoClient``'s tells it)."""
        self._lost.set()
        if self._owner is not None:
            self._owner._link_lost(self)

    def _stop(self, why: SessionEnded) -> None:
        """Stop for good: no reconnect; pending and later requests raise ``why``."""
        self.machine.stop(why)
        self._connected.clear()
        self._stopped.set()
        self._lost.set()

    # -- requests with retransmission ------------------------------------------------

    async def _outboxed(self, kind: Literal["publish", "emit"], body: dict[str, Any]) -> Any:
        entry = self.state.outbox.add(kind, body)
        try:
            result = await self._request(kind, entry.body)
        except BaseException:
            self.state.outbox.failed(entry)
            raise
        self.state.outbox.acked(entry, result)
        return result

    async def _volatile(self, kind: Literal["publish", "emit"], body: dict[str, Any]) -> Any:
        """Send once on the connection there is, or not at all (None, counted)."""
        if self.ended is not None:
            raise self.ended
        if self._connected.is_set():
            try:
                async with asyncio.timeout(self.request_timeout):
                    return await self._send(kind, {**body, "volatile": True})
            except ConnectionLost:
                self._connected.clear()
                self._lost.set()
        self.state.stats.volatile_dropped += 1
        return None

    async def _request(self, kind: str, body: dict[str, Any]) -> Any:
        """Send until acked: after a lost connection, again (same clientEventId) once resumed."""
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the caller's cancellation.
        async with asyncio.timeout(self.request_timeout):
            return await self._attempt(kind, body, wait=True)

    async def _attempt(self, kind: str, body: dict[str, Any], *, wait: bool) -> Any:
        """Send, retrying as the machine says; without ``wait``, a lost connection raises
        ``ConnectionLost`` rather than waiting for the reconnect (the supervisor's own rejoins)."""
        refusals = 0  # in a row, for the growing jitter of rate_limited retries
        while True:
            if self.ended is not None:
                raise self.ended
            if wait and not self._connected.is_set():
                await _first(self._connected, self._stopped)
                continue
            try:
                return await self._send(kind, body)
            except (ConnectionLost, GatewayError) as exc:
                step = self.machine.request_step(exc, refusals + 1)
                if isinstance(step, GiveUp):
                    raise step.error from None
                if isinstance(step, RetryAfter):
                    refusals += 1
                    await asyncio.sleep(step.seconds)
                    continue
                refusals = 0
                self._connected.clear()
                self._lost.set()
                if not wait:
                    raise ConnectionLost(f"{kind} lost its connection: {exc!r}") from None

    # -- reconnection ----------------------------------------------------------------

    async def _open(self, resume: bool) -> Opened:
        self._lost.clear()
        return await self._open_connection(resume)

    async def _supervise(self) -> None:
        while self.ended is None:
            await self._lost.wait()
            self._connected.clear()
            await self._close_connection(goodbye=False)
            actions = deque(self.machine.lost())
            while actions:
                actions.extend(await self._perform(actions.popleft()))
            if self.ended is None and not self._lost.is_set():
                self._connected.set()

    async def _perform(self, action: Action) -> list[Action]:
        """Do what the machine asked; what it says next."""
        if isinstance(action, Sleep):
            await asyncio.sleep(action.seconds)
            return self.machine.timer_fired()
        if isinstance(action, OpenSession):
            try:
                await self._open(action.resume)
            except Exception as exc:
                return self.machine.failed(exc)
            return self.machine.opened()
        if isinstance(action, Rejoin):
            for room in action.rooms:
                try:
                    async with asyncio.timeout(self.request_timeout):
                        await self._attempt("join", {"room": room}, wait=False)
                except (ConnectionLost, TimeoutError) as exc:
                    log.info("rejoining %s failed: %r", room, exc)
                    await self._close_connection(goodbye=False)
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

    # -- transport hooks ---------------------------------------------------------------

    async def _open_connection(self, resume: bool) -> Opened:
        raise NotImplementedError

    async def _send(self, kind: str, body: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def _close_connection(self, goodbye: bool) -> None:
        raise NotImplementedError

    async def _release(self) -> None:
        """Free what the client holds beyond one connection (``close()``, after the goodbye)."""


async def _first(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class SseClient(_Client):
    """SSE down, POST up. ``SseClient(url, "/chat", token=...)``; ``await client.connect()``.

    ``mode``: ``"stream"`` keeps one long response open; ``"poll"`` asks the gateway to end
    each response after a batch of events and resumes at once (for proxies that buffer
    responses); ``"auto"`` (default) streams, and falls back to polling when the response
    headers arrive but the ``open`` frame does not within ``buffer_timeout`` seconds —
    the mark of a buffering proxy.
    """

    @property
    def transport_name(self) -> str:
        return "sse"

    def __init__(
        self, url: str, namespace: str = "/", *, mode: str = "auto", buffer_timeout: float = 3.0,
        **options: Any,
    ) -> None:
        super().__init__(url, namespace, **options)
        if mode not in ("auto", "stream", "poll"):
            raise ValueError(f"mode must be auto, stream or poll, not {mode!r}")
        self.mode = mode
        self.polling = mode == "poll"
        self.buffer_timeout = buffer_timeout
        self.http = httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(self.request_timeout))
        self._reader: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[Opened] | None = None
        self._heard = False  # bytes came on this connection: it is not held back by a proxy
        self.answered = asyncio.Event()  # the attempt under way got its response headers

    async def _get(self, resume: bool) -> httpx.Response:
        params = {"namespace": self.state.namespace, **({"mode": "poll"} if self.polling else {})}
        params.update({k: v for k, v in self.auth.items() if isinstance(v, str)})
        headers = bearer(await atoken_value(self.token))  # asked on every attempt (and poll)
        if resume and self.state.cursor:
            headers["Last-Event-ID"] = self.state.cursor
        request = self.http.build_request("GET", "/sse/connect", params=params, headers=headers)
        within = self.attempt_timeout
        try:
            async with asyncio.timeout(within):
                response = await self.http.send(request, stream=True)
                if response.status_code != 200:
                    try:
                        body = await response.aread()
                    finally:
                        await bounded(response.aclose(), CLOSE_BOUND, "closing an HTTP response", self.state.stats)
                    raise error_from_body(body)
        except httpx.TransportError as exc:
            raise ConnectionLost(repr(exc)) from None
        except TimeoutError:
            raise ConnectionLost(f"no answer to the connection attempt within {within} s") from None
        return response

    async def _open_connection(self, resume: bool) -> Opened:
        self.answered.clear()
        response = await self._get(resume)
        self.answered.set()
        self._opened = asyncio.get_running_loop().create_future()
        self._heard = False
        self._reader = asyncio.create_task(self._read(response), name="rtclient-sse")
        detect = self.mode == "auto" and not self.polling
        try:
            async with asyncio.timeout(self.buffer_timeout if detect else self.attempt_timeout):
                return await asyncio.shield(self._opened)  # shielded: the reader settles it
        except asyncio.CancelledError:
            reader, self._reader = self._reader, None
            let_go(reader)  # it stops at its next chunk on its own (no longer ``_reader``)
            raise
        except ConnectionLost:
            await self._stop_reader()
            raise
        except TimeoutError:
            await self._stop_reader()
            if self._heard:  # bytes came, a usable open did not: not a proxy's doing
                raise UnusableStream("no usable open frame in time") from None
            if not detect:
                raise ConnectionLost("no open frame in time") from None
            # Headers came, the first frame did not: something holds the bytes back.
            log.warning("the SSE stream looks buffered by a proxy; polling instead")
            self.polling = True
            return await self._open_connection(resume)

    async def _read(self, response: httpx.Response) -> None:
        me = asyncio.current_task()
        why: ConnectionLost = UnusableStream("the stream ended before its open frame")
        try:
            while True:
                await self._consume(response)
                if not self.polling or self.ended is not None or self._reader is not me:
                    return
                response = await self._get(resume=True)  # the next poll, at once
        except (TimeoutError, GatewayError, ConnectionLost, httpx.HTTPError, OSError) as exc:
            why = ConnectionLost(f"the stream broke before its open frame: {exc!r}")
        finally:
            if self._reader is me:  # not stopped on purpose: the connection is lost
                if self._opened is not None and not self._opened.done():
                    self._opened.set_exception(why)
                self._lose()

    async def _consume(self, response: httpx.Response) -> None:
        """Parse one response until it ends; raises ``TimeoutError`` on silence."""
        me = asyncio.current_task()
        parser = SseParser()
        chunks = response.aiter_raw()
        try:
            while True:
                # Pings are comment lines: any bytes at all prove the stream is alive.
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancellation
                # that stops this reader (a chunk and the cancel at once), which then reads on.
                try:
                    async with asyncio.timeout(self.machine.silence_limit):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    return
                if self._reader is not me:
                    return  # let go of (a reader left behind by ``_stop_reader``): not ours any more
                self._heard = True
                for frame in parser.feed(chunk):
                    opening = self._opened is not None and not self._opened.done()
                    try:
                        events = self.state.handle_frame(frame)
                    except ProtocolError as exc:
                        self._malformed(exc)
                        events = []
                    if opening and not self._settle_open(events, frame.event):
                        return
                    self._deliver(events)
        finally:
            await bounded(response.aclose(), CLOSE_BOUND, "closing an HTTP response", self.state.stats)

    def _abandon(self) -> None:
        """Let go of the attempt's stream at once: an ``AutoClient`` took the session elsewhere."""
        reader, self._reader = self._reader, None
        let_go(reader)

    async def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        await reap(reader, CLOSE_BOUND, "the SSE reader", self.state.stats)

    async def _send(self, kind: str, body: dict[str, Any]) -> Any:
        if self.ended is not None:
            raise self.ended
        if self.state.sid is None:
            raise ConnectionLost("no session")
        try:
            # request_body: bytes as binary markers; JSON_BODY: the content type the gateway requires.
            response = await self.http.post(f"/sse/sessions/{self.state.sid}/{kind}", content=request_body(body),
                                            headers={**self.state.session_headers(), **JSON_BODY})
        except httpx.TransportError as exc:
            raise ConnectionLost(repr(exc)) from None
        if response.status_code >= 400:
            raise error_from_body(response.content)
        return result_from_body(response.content)

    async def _close_connection(self, goodbye: bool) -> None:
        if goodbye and self.state.sid is not None:
            request = self.http.delete(f"/sse/sessions/{self.state.sid}", headers=self.state.session_headers())
            await bounded(request, CLOSE_BOUND, "the goodbye (DELETE)", self.state.stats)
        await self._stop_reader()

    async def _release(self) -> None:
        await bounded(self.http.aclose(), CLOSE_BOUND, "closing the HTTP client", self.state.stats)


class SocketIOClient(_Client):
    """Socket.IO through python-socketio, plus the gateway's resume and outbox.

    ``transports=["websocket"]`` or ``["polling"]`` pins a transport; the default tries
    polling then upgrades, like any Socket.IO client.
    """

    def __init__(
        self, url: str, namespace: str = "/", *, transports: list[str] | None = None, **options: Any
    ) -> None:
        super().__init__(url, namespace, **options)
        self.transports = transports
        self.sio: socketio.AsyncClient | None = None
        self._generation = 0  # which connection is current: frames of older ones are ignored
        self._opened: asyncio.Future[Opened] | None = None
        # ``AutoClient``: the resume fields (or none), asked once the engine is open.
        self._auth_hook: Callable[[], Coroutine[Any, Any, dict[str, Any]]] | None = None

    @property
    def transport_name(self) -> str:
        return self.sio.transport() if self.sio is not None and self.sio.connected else "?"

    async def _open_connection(self, resume: bool) -> Opened:
        import socketio  # here, not at the top: ``import rtclient`` loads no Socket.IO library

        allow_long_payloads()  # a resume's replay is often more than a polling response's 16 packets
        ns = self.state.namespace
        within = self.attempt_timeout
        # python-engineio's own request_timeout bounds its handshake and each POST.
        sio = socketio.AsyncClient(reconnection=False, request_timeout=within)
        refused: list[Any] = []
        self._opened = asyncio.get_running_loop().create_future()
        self._generation += 1
        generation = self._generation

        async def any_event(event: str, *args: Any) -> Any:
            data = args[0] if args else None
            if generation != self._generation:
                return None  # a connection this client already let go of (e.g. its ``replaced``)
            if is_frame(event, data):
                opening = self._opened is not None and not self._opened.done()
                events = self._handle(event, data)
                if opening:
                    self._settle_open(events, event)
                return None
            handler = self._call_handlers.get(event)  # a server call: answer through the ack
            if handler is None:
                return None
            try:
                result = handler(data)
                return await result if inspect.isawaitable(result) else result
            except Exception:  # unanswered: the gateway's call times out
                log.exception("the handler of call %r raised", event)
                return None

        # python-socketio hands an event named "connect", "connect_error" or "disconnect" to
        # these handlers too (its catch-all skips them): a room event by such a name is skipped.
        async def connected(*args: Any) -> None:
            if args:  # a real connect has no argument
                self._handle("connect", args[0])

        async def connect_error(data: Any = None, *args: Any) -> None:
            if is_envelope(data):
                self._handle("connect_error", data)
            else:
                refused.append(data)

        async def disconnected(*args: Any) -> None:
            if args and not isinstance(args[0], str):  # a real one has no argument or a reason string
                self._handle("disconnect", args[0])
                return
            if generation == self._generation and self._opened is not None and not self._opened.done():
                self._opened.set_exception(UnusableStream("disconnected before the open frame"))
            if self.sio is sio:
                self._lose()

        for event, handler in (("*", any_event), ("connect", connected), ("connect_error", connect_error),
                               ("disconnect", disconnected)):
            sio.on(event, handler, namespace=ns)
        token = await atoken_value(self.token)  # asked on every attempt
        auth = {**self.auth, **({"token": token} if token is not None else {}),
                **(self.state.resume_auth() if resume else {})}
        connect_auth: Any = auth or None
        if self._auth_hook is not None:
            hook = self._auth_hook

            async def hooked() -> dict[str, Any]:  # python-socketio calls it once the engine is open
                return {**auth, **await hook()}

            connect_auth = hooked
        try:
            async with asyncio.timeout(within):
                await sio.connect(self.url, namespaces=[ns], transports=self.transports, auth=connect_auth,
                                  wait_timeout=within)
        except asyncio.CancelledError:
            self._let_go_later(abandon(sio, self.state.stats))
            raise
        except (socketio.exceptions.ConnectionError, TimeoutError) as exc:
            await say_goodbye(sio, self.state.stats)  # a half-made connection (and its aiohttp session)
            if refused and isinstance(refused[0], dict) and isinstance(refused[0].get("data"), dict):
                raise error_from_body(refused[0]["data"]) from None
            raise ConnectionLost(str(exc) or f"no connection within {within} s") from None
        self.sio = sio
        try:
            async with asyncio.timeout(within):
                return await asyncio.shield(self._opened)  # shielded: the frame handler settles it
        except asyncio.CancelledError:
            self._let_go_later(self._close_connection(goodbye=False))
            raise
        except (ConnectionLost, TimeoutError):
            await self._close_connection(goodbye=False)  # let go of it: the session stays resumable
            raise

    def _handle(self, name: str, data: Any) -> list[ClientEvent]:
        try:
            events = self.state.handle(name, data)
        except ProtocolError as exc:
            self._malformed(exc)
            return []
        self._deliver(events)
        return events

    async def _send(self, kind: str, body: dict[str, Any]) -> Any:
        import socketio

        if self.ended is not None:
            raise self.ended
        sio = self.sio
        if sio is None or not sio.connected:
            raise ConnectionLost("not connected")
        args: Any
        if kind == "emit":
            event, args = body["event"], (body.get("data"), emit_meta(body))
        elif kind == "ack":
            return None  # Socket.IO acks travel with the call itself
        else:
            event, args = kind, body
        # python-socketio keeps waiting for an ack after the connection is gone; race it
        # against the loss so the request is resent as soon as the session is resumed.
        call = asyncio.ensure_future(
            sio.call(event, args, namespace=self.state.namespace, timeout=self.request_timeout)
        )
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({call, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the caller is cancelled: neither is left waiting
            lost.cancel()
            answered = call.done()
            if not answered:
                call.cancel()
        if not answered:
            raise ConnectionLost("connection lost before the ack")
        try:
            reply = call.result()
        except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError,
                socketio.exceptions.DisconnectedError) as exc:
            raise ConnectionLost(repr(exc)) from None
        if not isinstance(reply, dict) or "ok" not in reply:
            raise ProtocolError(f"unexpected ack {reply!r:.200}")
        if not reply["ok"]:
            raise error_from_body(reply["error"])
        return reply["result"]

    async def _close_connection(self, goodbye: bool) -> None:
        sio, self.sio = self.sio, None
        self._generation += 1  # whatever it still delivers is no longer ours
        if sio is None:
            return
        if goodbye:
            await say_goodbye(sio, self.state.stats)
        else:
            await abandon(sio, self.state.stats)


class AutoClient(_Client):
    """The transport the network allows, moving the live session to a better one: ``auto``.

    As rtgateway.js's ``transport: "auto"`` (``AutoPlan`` in ``rtclient.reconnect`` decides):
    the session opens on SSE at once (one round trip) while WebSocket is tried beside it; once
    WebSocket's engine is open, the session is resumed there (Socket.IO auth ``{sid, key,
    offsets}``) and the SSE stream let go of. A proxy that refuses WebSocket leaves the session
    on SSE + POST; one that buffers streams, on SSE poll mode (or on WebSocket, if it passes);
    SSE failing for the network's sake, on Socket.IO long-polling. What failed is remembered
    per gateway URL for ``remember`` seconds (``rtclient.reconnect.network_memory``), so a
    client made later does not try a blocked WebSocket first.

    The application sees a ``TransportChanged`` event (``on("transport", ...)``) when the
    session opens and on every move, and ``transport_name``; a move loses and repeats nothing
    (both connections feed one ``ClientState``, whose offsets drop the overlap), and the old
    connection's ``close {reason: "replaced"}`` is expected, not the end. ``history`` lists
    what was tried and how it went. Bounds as ``SseClient``'s.
    """

    def __init__(
        self, url: str, namespace: str = "/", *, buffer_timeout: float = 3.0, remember: float = 600.0,
        upgrade_delay: float = 0.0, **options: Any,
    ) -> None:
        super().__init__(url, namespace, **options)
        self.buffer_timeout = buffer_timeout
        self.upgrade_delay = upgrade_delay  # seconds before WebSocket is tried beside SSE
        self.auto = AutoPlan(self.url, remember)
        self._link: _Client | None = None  # the connection carrying the session
        self._moving: SocketIOClient | None = None  # resuming the session on WebSocket, not yet its carrier
        self._migrated: _Client | None = None  # arrived by a move: its recovery frame is no news
        self._old_lost = False  # the carrier was lost while a move was under way
        # A move starts when no request is in flight and no request starts until it ends: behind
        # a balancer the old connection's node may not be the new one's, and a request the old
        # node ran after the new one took the session over would be lost with the old copy.
        self._in_flight = 0
        self._requests_settled = asyncio.Event()
        self._requests_settled.set()
        self._not_moving = asyncio.Event()
        self._not_moving.set()
        # One, made now (an HTTP client costs milliseconds to make): its connection pool lasts.
        self._sse = SseClient(self.url, namespace, buffer_timeout=buffer_timeout, token=self.token, auth=self.auth,
                              request_timeout=self.request_timeout, connect_timeout=self.connect_timeout)
        self._adopt(self._sse)
        self._probe: asyncio.Task[Opened | None] | None = None
        self._shown: str | None = None

    async def connect(self) -> Opened:
        """Open the session as ``_Client.connect``; a failure for the network's sake is followed
        by the plan's next attempt (after a backoff delay) up to Socket.IO polling, the last
        resort (``AutoPlan.connect_again``)."""
        attempts = 0
        while True:
            attempts += 1
            tried = self.auto.next()
            try:
                return await super().connect()
            except Exception as exc:
                if not self.auto.connect_again(tried, exc, attempts):
                    raise
            await asyncio.sleep(self.backoff.next())

    @property
    def transport_name(self) -> str:
        """What carries the session: ``sse``, ``sse-poll``, ``websocket``, ``polling`` (``?`` before)."""
        return self._shown or "?"

    @property
    def history(self) -> list[Attempt]:
        return list(self.auto.history)

    # -- the connections ------------------------------------------------------------------

    def _adopt(self, link: _Client) -> None:
        """``link`` carries this client's session: one state, one machine, frames to us."""
        link.state, link.machine, link._owner = self.state, self.machine, self
        link._call_handlers = self._call_handlers

    def _socketio(self, transport: Carrier) -> SocketIOClient:
        link = SocketIOClient(self.url, self.state.namespace, transports=[transport], token=self.token,
                              auth=self.auth, request_timeout=self.request_timeout,
                              connect_timeout=self.connect_timeout)
        self._adopt(link)
        return link

    def _sse_link(self, poll: bool) -> SseClient:
        self._sse.polling = self._sse.polling or poll
        return self._sse

    def _carrying(self, link: _Client, transport: Carrier) -> None:
        """``link``'s attempt gave the session: it carries it."""
        if isinstance(link, SseClient) and link.polling and transport == "sse":
            self.auto.buffered()
            transport = "sse-poll"
        self._link = link
        self.auto.opened(transport)
        self._show(transport)

    def _show(self, transport: str) -> None:
        if transport != self._shown:
            self._shown = transport
            _Client._deliver(self, [TransportChanged("transport", transport)])

    async def _open_connection(self, resume: bool) -> Opened:
        await self._stop_moving()
        transport = self.auto.next()
        self.auto.note(transport, "trying")
        if transport in ("websocket", "polling"):
            link: _Client = self._socketio(transport)
        else:
            link = self._sse_link(transport == "sse-poll")
            if self.auto.probe_beside(transport):
                return await self._sse_beside_websocket(link, transport, resume)
        self._link = link
        try:
            opened = await link._open(resume)
        except Exception as exc:
            self.auto.failed(transport, exc)
            raise
        self._carrying(link, transport)
        return opened

    async def _sse_beside_websocket(self, sse: SseClient, transport: Carrier, resume: bool) -> Opened:
        """SSE at once, WebSocket beside it: the session from whichever gives it first."""
        self._link = sse
        attempt = asyncio.create_task(sse._open(resume), name="rtclient-auto-sse")
        probe = self._probe = asyncio.create_task(self._try_websocket(sse, attempt, resume), name="rtclient-auto-ws")
        try:
            await asyncio.wait({attempt, probe}, return_when=asyncio.FIRST_COMPLETED)
            if not attempt.done():  # the probe ended first: it took the session, or failed
                if not probe.cancelled() and probe.exception() is None and probe.result() is not None:
                    return probe.result()  # type: ignore[return-value]  # checked just above
                await asyncio.wait({attempt})
            if not attempt.cancelled() and attempt.exception() is None:
                self._carrying(sse, transport)
                return attempt.result()
            if not attempt.cancelled():  # SSE failed: WebSocket may not
                self.auto.failed(transport, attempt.exception() or ConnectionLost("?"))
            await asyncio.wait({probe})
            if not probe.cancelled() and probe.exception() is None and probe.result() is not None:
                return probe.result()  # type: ignore[return-value]  # checked just above
            raise (attempt.exception() if not attempt.cancelled() else None) or probe.exception() \
                or ConnectionLost("neither SSE nor WebSocket gave a session")
        except asyncio.CancelledError:
            let_go(attempt)
            let_go(probe)
            raise

    async def _try_websocket(self, sse: SseClient, attempt: asyncio.Task[Opened], resume: bool) -> Opened | None:
        """WebSocket beside the SSE attempt: once that attempt has given a session (or failed, or
        looks held back), at the latest ``PROBE_LATEST`` s after it began. Returns the session's
        open if it started here (SSE gave none in time), None after a move (or a failed one)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        answered = asyncio.ensure_future(sse.answered.wait())
        try:
            await asyncio.wait({attempt, answered}, timeout=PROBE_LATEST, return_when=asyncio.FIRST_COMPLETED)
        finally:
            answered.cancel()
        if not attempt.done() and sse.answered.is_set():  # as long again as the answer took
            await asyncio.wait({attempt}, timeout=max(0.0, min(loop.time() - started, started + PROBE_LATEST - loop.time())))
        if attempt.done() and self.upgrade_delay > 0:
            await asyncio.sleep(self.upgrade_delay)
        link = self._socketio("websocket")
        engine_started = loop.time()
        decided: list[str] = []

        async def at_engine_open() -> dict[str, Any]:
            waited = attempt.done()
            if not waited and not sse.answered.is_set():  # SSE may answer yet: as long as the engine took
                await asyncio.wait({attempt}, timeout=max(0.005, loop.time() - engine_started))
                waited = True
            opened = attempt.done() and not attempt.cancelled() and attempt.exception() is None
            decision = self.auto.at_engine_open(opened and self._link is sse, sse.answered.is_set(), waited)
            decided.append(decision)
            if decision == "move":
                self._not_moving.clear()
                self._moving, self._migrated, self._old_lost = link, link, False
                try:  # positions taken once the requests under way are answered
                    async with asyncio.timeout(self.attempt_timeout):
                        await self._requests_settled.wait()
                except TimeoutError:
                    pass  # a request stuck on the old connection: move anyway (its retry follows)
                return self.state.resume_auth()
            # SSE held back, failed or slower: the session starts (or resumes) here instead.
            if not attempt.done():
                sse._abandon()
                attempt.cancel()
                self.auto.note(transport_of(sse), "abandoned", "held back" if sse.answered.is_set() else "slower")
            self._link = link
            return self.state.resume_auth() if resume else {}

        link._auth_hook = at_engine_open
        self.auto.note("websocket", "trying")
        try:
            opened = await link._open(resume=False)  # the hook adds the resume fields
        except Exception as exc:
            got_through = self._link is not link and self._link is not None and self.state.sid is not None
            # The auth hook ran: the engine opened, so WebSocket is not refused here.
            self.auto.failed("websocket", exc, other_got_through=got_through, reached=bool(decided))
            if self._moving is link:
                self._moving = self._migrated = None
                self._not_moving.set()
                if self._old_lost:  # the carrier was lost while moving: reconnect now
                    self._old_lost = False
                    self._lost.set()
            if decided == ["take over"]:
                raise
            return None
        if decided == ["take over"]:
            self._carrying(link, "websocket")
            return opened
        return None  # moved: ``_moved`` made it the carrier when its open frame came

    def _moved(self, link: SocketIOClient) -> None:
        """The session's open frame came on the connection it moves to: that one carries it."""
        old, self._link, self._moving, self._old_lost = self._link, link, None, False
        self._not_moving.set()
        self.auto.note("websocket", "moved", self._shown or "")
        self.auto.opened("websocket")
        if old is not None and old is not link:
            if isinstance(old, SseClient):
                old._abandon()  # at once: not one more frame from it counts
            # Its stream gets close {replaced}: expected, and ignored as it no longer carries.
            self._let_go_later(old._close_connection(goodbye=False))
        self._show("websocket")

    async def _stop_moving(self) -> None:
        probe, self._probe = self._probe, None
        moving, self._moving = self._moving, None
        self._not_moving.set()
        await reap(probe, CLOSE_BOUND, "the WebSocket probe", self.state.stats)
        if moving is not None:
            await moving._close_connection(goodbye=False)

    # -- what the connections say ---------------------------------------------------------

    def _carried(self, link: _Client, events: list[ClientEvent]) -> None:
        """Events from one of the connections. Room events from either are delivered (offsets
        drop the overlap of a move); control frames count from the carrier only."""
        shown: list[ClientEvent] = []
        for event in events:
            if isinstance(event, Opened) and link is self._moving:
                self._moved(link)  # the move is no news to the application: a transport event
                continue
            if isinstance(event, (Opened, Closing)) and link is not self._link:
                continue  # e.g. close {replaced} on the connection the session moved from
            if isinstance(event, Closing) and event.reason == "replaced" and self._moving is not None:
                continue  # our own move took the session
            if isinstance(event, Recovery) and link is self._migrated:
                self._migrated = None
                if event.complete and not event.gaps:
                    continue
            shown.append(event)
        _Client._deliver(self, shown)

    def _link_lost(self, link: _Client) -> None:
        if link is not self._link or link is self._moving:
            return  # a connection let go of, or the move's own (its attempt fails on its own)
        if self._moving is not None:
            self._old_lost = True  # the move under way takes the session over (or reconnects)
            return
        self._lost.set()

    # -- transport hooks ------------------------------------------------------------------

    async def _send(self, kind: str, body: dict[str, Any]) -> Any:
        await self._not_moving.wait()  # bounded by the request's own timeout
        link = self._link
        if self.ended is not None:
            raise self.ended
        if link is None:
            raise ConnectionLost("not connected")
        self._in_flight += 1
        self._requests_settled.clear()
        try:
            return await link._send(kind, body)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._requests_settled.set()

    async def _close_connection(self, goodbye: bool) -> None:
        await self._stop_moving()
        link, self._link = self._link, None
        if link is not None:
            await link._close_connection(goodbye)

    async def _release(self) -> None:
        await self._sse._release()


def transport_of(sse: SseClient) -> Carrier:
    return "sse-poll" if sse.polling else "sse"


def make_client(url: str, namespace: str = "/", *, transport: str = "auto", **options: Any) -> _Client:
    """A client by transport name: ``auto`` (the default: ``AutoClient``), ``sse``
    (``SseClient``), ``socketio`` (polling, then upgrading), ``websocket`` or ``polling``
    (``SocketIOClient`` on that transport only). ``options`` as the class takes them."""
    if transport == "auto":
        return AutoClient(url, namespace, **options)
    if transport == "sse":
        return SseClient(url, namespace, **options)
    if transport in ("socketio", "websocket", "polling"):
        return SocketIOClient(url, namespace, transports=None if transport == "socketio" else [transport], **options)
    raise ValueError(f"unknown transport {transport!r}")
