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
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import socketio

from gateway.wire.errors import GatewayError

from .protocol import (
    RESUME_REFUSED,
    SESSION_GONE,
    TRANSIENT,
    UNUSABLE_RESUMES,
    Backoff,
    Call,
    ClientEvent,
    ClientState,
    Closing,
    ConnectionLost,
    Opened,
    ProtocolError,
    SessionEnded,
    SseParser,
    TokenSource,
    UnusableStream,
    atoken_value,
    bearer,
    error_from_body,
    is_envelope,
    is_frame,
    result_from_body,
    retry_after,
    retry_delay,
    worth_logging,
)

log = logging.getLogger("rtclient")


class _Client:
    """Reconnect, resume, outbox and delivery, over a transport a subclass provides."""

    _opened: asyncio.Future[Opened] | None  # the connect waiting for its open frame

    transport_name = "?"

    def __init__(
        self,
        url: str,
        namespace: str = "/",
        *,
        token: TokenSource = None,
        auth: dict[str, Any] | None = None,
        request_timeout: float = 30.0,
        backoff: Backoff | None = None,
        queue_size: int = 10_000,
    ) -> None:
        self.url = url.rstrip("/")
        # ``auth``: the namespace middleware's other fields (SSE: query parameters).
        self.auth = {k: v for k, v in (auth or {}).items() if k != "token"}
        self.token: TokenSource = token if token is not None else (auth or {}).get("token")
        self.state = ClientState(namespace=namespace)
        self.request_timeout = request_timeout
        self.backoff = backoff or Backoff()
        self._queue: asyncio.Queue[ClientEvent] = asyncio.Queue(queue_size)
        self._listeners: dict[str, list[Callable[[ClientEvent], Any]]] = {}
        self._call_handlers: dict[str, Callable[[Any], Any]] = {}
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._stopped = asyncio.Event()
        self._closing = False
        self.ended: SessionEnded | None = None  # set once the client stopped for good
        self._supervisor: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()  # server calls being answered
        self._unusable = 0  # resumes in a row that gave no usable open frame
        self.dropped = 0  # events the application's queue had no room for

    # -- public API ----------------------------------------------------------------

    @property
    def sid(self) -> str | None:
        return self.state.sid

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
                wait = retry_delay(exc, refusals, self.backoff) if retry_after(exc) is not None else None
                if wait is None or loop.time() + wait > deadline:
                    raise
                await asyncio.sleep(wait)
        self._supervisor = asyncio.create_task(self._supervise(), name="rtclient-supervisor")
        return opened

    async def close(self) -> None:
        """End the session for good (the gateway releases its rooms).

        After a ``replaced`` close the session belongs to another connection: nothing is
        said to the gateway then, only this client's resources are released.
        """
        owned = self.ended is None
        self._stop(SessionEnded("closed"))
        if self._supervisor is not None and self._supervisor is not asyncio.current_task():
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        with contextlib.suppress(Exception):
            await self._close_connection(goodbye=owned)
        with contextlib.suppress(Exception):
            await self._release()
        self._connected.clear()

    async def drop(self) -> None:
        """Lose the connection without ending the session, as a network failure would."""
        await self._close_connection(goodbye=False)
        self._lost.set()

    async def join(self, room: str) -> dict[str, Any]:
        return await self._request("join", {"room": room})

    async def leave(self, room: str) -> dict[str, Any]:
        return await self._request("leave", {"room": room})

    async def publish(
        self, room: str, data: Any = None, *, event: str = "message", include_self: bool = False
    ) -> dict[str, Any]:
        """Publish a room event; returns the ack ``{"room", "offset"}`` once it is logged."""
        body = {"room": room, "event": event, "data": data, "includeSelf": include_self}
        return await self._outboxed("publish", body)

    async def emit(self, event: str, data: Any = None) -> Any:
        """Send an application event; returns its handler's return value."""
        return await self._outboxed("emit", {"event": event, "data": data})

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
        return await asyncio.wait_for(self._queue.get(), timeout)

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

    def _deliver(self, events: list[ClientEvent]) -> None:
        for event in events:
            if isinstance(event, Call):
                task = asyncio.create_task(self._answer(event))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
                continue
            if isinstance(event, Closing):
                if not event.reconnect:
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

    def _stop(self, why: SessionEnded) -> None:
        """Stop for good: no reconnect; pending and later requests raise ``why``."""
        if self.ended is None:
            self.ended = why
        self._closing = True
        self._connected.clear()
        self._stopped.set()
        self._lost.set()

    # -- requests with retransmission ------------------------------------------------

    async def _outboxed(self, kind: str, body: dict[str, Any]) -> Any:
        entry = self.state.outbox.add(kind, body)  # type: ignore[arg-type]
        try:
            result = await self._request(kind, entry.body)
        except BaseException:
            self.state.outbox.failed(entry)
            raise
        self.state.outbox.acked(entry, result)
        return result

    async def _request(self, kind: str, body: dict[str, Any]) -> Any:
        """Send until acked: after a lost connection, again (same clientEventId) once resumed."""
        async def attempt() -> Any:
            refusals = 0  # in a row, for the growing jitter of rate_limited retries
            while True:
                if self.ended is not None:
                    raise self.ended
                if not self._connected.is_set():
                    await _first(self._connected, self._stopped)
                    continue
                try:
                    return await self._send(kind, body)
                except ConnectionLost:
                    if self.ended is not None:
                        raise self.ended from None
                    self._connected.clear()
                    self._lost.set()
                except GatewayError as exc:
                    if self.ended is not None:  # e.g. unknown_sid: the key is someone else's now
                        raise self.ended from None
                    if exc.code in SESSION_GONE:
                        self._connected.clear()
                        self._lost.set()
                    elif exc.code in TRANSIENT:
                        refusals += 1  # rate_limited: after its retryAfter (nothing was done)
                        await asyncio.sleep(retry_delay(exc, refusals, self.backoff))
                    else:
                        raise
        return await asyncio.wait_for(attempt(), self.request_timeout)

    # -- reconnection ----------------------------------------------------------------

    async def _open(self, resume: bool) -> Opened:
        self._lost.clear()
        opened = await self._open_connection(resume)
        self._unusable = 0
        self._connected.set()
        return opened

    async def _supervise(self) -> None:
        while not self._closing:
            await self._until_lost()
            self._connected.clear()
            await self._close_connection(goodbye=False)
            if self._closing:  # stopped for good (``replaced``): no reconnect
                return
            self.backoff.reset()
            asked = 0.0  # what a rate_limited refusal said to wait, at least
            while not self._closing:
                await asyncio.sleep(max(self.backoff.next(), asked))
                asked = 0.0
                resume = self.state.sid is not None
                try:
                    if resume:
                        await self._open(resume=True)
                    else:  # a start over that failed half-way: again
                        await self._start_over()
                except GatewayError as exc:
                    if not resume or not (exc.code in SESSION_GONE or exc.code in RESUME_REFUSED):
                        log.info("reconnect refused: %s", exc)
                        asked = retry_after(exc) or 0.0
                        continue
                    why: Exception = exc
                except UnusableStream as exc:
                    self._unusable += 1
                    if not resume or self._unusable < UNUSABLE_RESUMES:
                        log.info("reconnect failed: %r", exc)
                        continue
                    why = exc
                except (TimeoutError, ConnectionLost, OSError, httpx.HTTPError, socketio.exceptions.ConnectionError) as exc:
                    log.info("reconnect failed: %r", exc)
                    continue
                except Exception:  # e.g. the token callback failed: keep trying, with backoff
                    log.warning("reconnect failed", exc_info=True)
                    continue
                else:
                    self.state.stats.reconnects += 1
                    break
                # The session is gone, or cannot be resumed: a new one, its rooms joined again.
                log.warning("cannot resume the session (%s): starting a new one", why)
                try:
                    await self._start_over()
                except (TimeoutError, GatewayError, ConnectionLost, OSError, httpx.HTTPError, socketio.exceptions.ConnectionError) as again:
                    log.info("starting over failed: %r", again)
                    asked = retry_after(again) or 0.0
                    continue
                except Exception:  # e.g. the token callback failed: keep trying
                    log.warning("starting over failed", exc_info=True)
                    continue
                self.state.stats.reconnects += 1
                break

    async def _start_over(self) -> None:
        """The gateway forgot our session: say so, open a new one, rejoin our rooms."""
        rooms = sorted(self.state.rooms)
        if self.state.sid is not None:
            self._deliver(self.state.session_lost())
        self.state.rooms = set(rooms)  # kept until rejoined, so a failed start over retries them
        await self._open(resume=False)
        for room in rooms:
            try:
                await self.join(room)
            except GatewayError as exc:  # e.g. no longer allowed: say so, keep the others
                log.warning("could not rejoin %s: %s", room, exc)

    async def _until_lost(self) -> None:
        await self._lost.wait()

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

    transport_name = "sse"

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

    async def _get(self, resume: bool) -> httpx.Response:
        params = {"namespace": self.state.namespace, **({"mode": "poll"} if self.polling else {})}
        params.update({k: v for k, v in self.auth.items() if isinstance(v, str)})
        headers = bearer(await atoken_value(self.token))  # asked on every attempt (and poll)
        if resume and self.state.cursor:
            headers["Last-Event-ID"] = self.state.cursor
        request = self.http.build_request("GET", "/sse/connect", params=params, headers=headers)
        try:
            response = await self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise ConnectionLost(repr(exc)) from None
        if response.status_code != 200:
            body = await response.aread()
            await response.aclose()
            raise error_from_body(body)
        return response

    async def _open_connection(self, resume: bool) -> Opened:
        response = await self._get(resume)
        self._opened = asyncio.get_running_loop().create_future()
        self._heard = False
        self._reader = asyncio.create_task(self._read(response), name="rtclient-sse")
        detect = self.mode == "auto" and not self.polling
        try:
            return await asyncio.wait_for(
                asyncio.shield(self._opened), self.buffer_timeout if detect else self.request_timeout
            )
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
                if not self.polling or self._closing:
                    return
                response = await self._get(resume=True)  # the next poll, at once
        except (TimeoutError, GatewayError, ConnectionLost, httpx.HTTPError, OSError) as exc:
            why = ConnectionLost(f"the stream broke before its open frame: {exc!r}")
        finally:
            if self._reader is me:  # not stopped on purpose: the connection is lost
                if self._opened is not None and not self._opened.done():
                    self._opened.set_exception(why)
                self._lost.set()

    async def _consume(self, response: httpx.Response) -> None:
        """Parse one response until it ends; raises ``TimeoutError`` on silence."""
        parser = SseParser()
        chunks = response.aiter_raw()
        try:
            while True:
                # Pings are comment lines: any bytes at all prove the stream is alive.
                silence = self.state.ping_interval + self.state.ping_timeout
                try:
                    chunk = await asyncio.wait_for(chunks.__anext__(), silence)
                except StopAsyncIteration:
                    return
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
            await response.aclose()

    async def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def _send(self, kind: str, body: dict[str, Any]) -> Any:
        if self.ended is not None:
            raise self.ended
        if self.state.sid is None:
            raise ConnectionLost("no session")
        try:
            # json= sends Content-Type: application/json, which the gateway requires.
            response = await self.http.post(f"/sse/sessions/{self.state.sid}/{kind}", json=body,
                                            headers=self.state.session_headers())
        except httpx.TransportError as exc:
            raise ConnectionLost(repr(exc)) from None
        if response.status_code >= 400:
            raise error_from_body(response.content)
        return result_from_body(response.content)

    async def _close_connection(self, goodbye: bool) -> None:
        if goodbye and self.state.sid is not None:
            with contextlib.suppress(httpx.HTTPError):
                await self.http.delete(f"/sse/sessions/{self.state.sid}", headers=self.state.session_headers())
        await self._stop_reader()

    async def _release(self) -> None:
        await self.http.aclose()


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

    @property
    def transport_name(self) -> str:  # type: ignore[override]
        return self.sio.transport() if self.sio is not None and self.sio.connected else "?"

    async def _open_connection(self, resume: bool) -> Opened:
        import engineio.payload

        # python-engineio refuses polling responses of more than 16 packets; a replay is often more.
        engineio.payload.Payload.max_decode_packets = max(engineio.payload.Payload.max_decode_packets, 4096)
        ns = self.state.namespace
        sio = socketio.AsyncClient(reconnection=False)
        refused: list[Any] = []
        self._opened = asyncio.get_running_loop().create_future()
        self._generation += 1
        generation = self._generation

        @sio.on("*", namespace=ns)
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
        @sio.on("connect", namespace=ns)
        async def connected(*args: Any) -> None:
            if args:  # a real connect has no argument
                self._handle("connect", args[0])

        @sio.on("connect_error", namespace=ns)
        async def connect_error(data: Any = None, *args: Any) -> None:
            if is_envelope(data):
                self._handle("connect_error", data)
            else:
                refused.append(data)

        @sio.on("disconnect", namespace=ns)
        async def disconnected(*args: Any) -> None:
            if args and not isinstance(args[0], str):  # a real one has no argument or a reason string
                self._handle("disconnect", args[0])
                return
            if generation == self._generation and self._opened is not None and not self._opened.done():
                self._opened.set_exception(UnusableStream("disconnected before the open frame"))
            if self.sio is sio:
                self._lost.set()

        token = await atoken_value(self.token)  # asked on every attempt
        auth = {**self.auth, **({"token": token} if token is not None else {}),
                **(self.state.resume_auth() if resume else {})}
        try:
            await sio.connect(self.url, namespaces=[ns], transports=self.transports, auth=auth or None,
                              wait_timeout=self.request_timeout)
        except socketio.exceptions.ConnectionError as exc:
            with contextlib.suppress(Exception):
                await sio.disconnect()
            if refused and isinstance(refused[0], dict) and isinstance(refused[0].get("data"), dict):
                raise error_from_body(refused[0]["data"]) from None
            raise ConnectionLost(str(exc)) from None
        self.sio = sio
        try:
            return await asyncio.wait_for(asyncio.shield(self._opened), self.request_timeout)
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
        if self.ended is not None:
            raise self.ended
        sio = self.sio
        if sio is None or not sio.connected:
            raise ConnectionLost("not connected")
        if kind == "emit":
            event, args = body["event"], (body.get("data"), {"clientEventId": body.get("clientEventId")})
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
        finally:
            lost.cancel()
        if not call.done():
            call.cancel()
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
            await sio.disconnect()
        else:
            await abandon(sio)


async def abandon(sio: socketio.AsyncClient) -> None:
    """Lose a python-socketio connection without a goodbye packet, as a network failure would.

    Polling has no socket to close: the client just stops talking, and the server
    notices after ``pingInterval + pingTimeout``.
    """
    eio = sio.eio
    if eio.current_transport == "websocket" and eio.ws is not None:
        await eio.ws.close()
    else:
        eio.state = "disconnected"
        if eio.http is not None:
            await eio.http.close()
    for task in (eio.read_loop_task, eio.write_loop_task):
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
