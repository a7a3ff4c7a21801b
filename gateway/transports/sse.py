"""SSE + POST: one ``text/event-stream`` for server->client, POSTs for client->server.

Wire format: ``docs/protocol.md``. This module only translates HTTP to hub calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse

from ..envelope import Envelope
from ..errors import BadLastEventId, PayloadTooLarge
from ..hub import Gateway
from ..messages import AckRequest, EmitRequest, JoinRequest, LeaveRequest, PublishRequest, Request as Body
from ..offsets import format_cursor, parse_cursor
from ..sessions import Session
from ..transport import ChannelFanout

import orjson

NAME = "sse"
_CLOSE = None  # queue sentinel: end the stream


class SseChannel:
    """One event stream. Frames are bytes, queued in a bounded queue the response drains."""

    transport = NAME
    __slots__ = ("queue", "session", "cut", "payloads", "_gateway", "_rest", "_rest_key")

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(gateway.settings.session_queue_size)
        self.session: Session | None = None
        self.cut: str | None = None
        self.payloads = 0  # room events and calls queued: what a poll waits for
        # The cursor minus one room's position, kept between deliveries to that room:
        # a busy room then costs one concatenation per delivery, not a rebuilt cursor.
        self._rest = b""
        self._rest_key: tuple[str, int, int] | None = None

    def _id_line(self, session: Session) -> bytes:
        return b"id: " + format_cursor(session.sid, session.positions).encode() + b"\n"

    def deliver(self, session: Session, envelope: Envelope, wire: bytes) -> None:
        self._put(self._frame(session, envelope, wire))

    def replay(self, session: Session, envelopes: list[Envelope]) -> None:
        if envelopes:
            self._put(b"".join(self._frame(session, e, e.encode()) for e in envelopes))

    def _frame(self, session: Session, envelope: Envelope, wire: bytes) -> bytes:
        self.payloads += 1
        room, positions = envelope.room, session.positions
        positions[room] = envelope.offset
        key = (room, id(positions), len(positions))
        if key != self._rest_key:
            others = {r: o for r, o in positions.items() if r != room}
            self._rest = b"id: " + format_cursor(session.sid, others).encode() + (b"," if others else b"")
            self._rest_key = key
        return (
            self._rest + room.encode() + b"=" + envelope.offset.encode()
            + b"\nevent: " + envelope.event.encode() + b"\ndata: " + wire + b"\n\n"
        )

    def send(self, event: str, data: Any) -> None:
        self._rest_key = None  # joined/left change the room set
        # open and joined move the cursor, so they carry an id a reconnect can resume from.
        head = self._id_line(self.session) if self.session and event in ("open", "joined", "left") else b""
        if event == "open":
            head += b"retry: 1000\n"
        self._put(head + b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")

    def call(self, ack_id: str, event: str, data: Any) -> None:
        self.payloads += 1
        self.send("call", {"ackId": ack_id, "event": event, "data": data})

    def close(self, reason: str) -> None:
        if self.cut is None:
            self.cut = reason
        try:
            self.queue.put_nowait(_CLOSE)
        except asyncio.QueueFull:
            pass  # the stream sees ``cut`` after its next frame

    def _put(self, frame: bytes) -> None:
        if self.cut is not None:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            # A subscriber this far behind is cut, not silently skipped: it resumes
            # from the delivery log when it reconnects.
            self._gateway.metrics.dropped.labels("slow_consumer").inc()
            self.cut = "slow_consumer"
            if self.session is not None:
                self._gateway.detach(self.session, self, "slow_consumer")

    async def frames(self) -> AsyncIterator[bytes]:
        """Drain the queue, coalescing whatever is waiting into one write."""
        queue = self.queue
        while True:
            frame = await queue.get()
            if frame is _CLOSE:
                return
            chunk = [frame]
            while not queue.empty():
                more = queue.get_nowait()
                if more is _CLOSE:
                    yield b"".join(chunk)
                    return
                chunk.append(more)
            yield b"".join(chunk) if len(chunk) > 1 else frame
            if self.cut is not None and self.cut != "shutdown":
                return


class SseTransport(ChannelFanout):
    name = NAME


_CONNECT_PARAMS = frozenset({"namespace", "token", "sid", "lastEventId"})


def _auth(request: Request, token: str | None, authorization: str | None) -> dict[str, Any]:
    """The middleware's auth payload, as Socket.IO's ``auth``: the token (query or Bearer)
    plus every other query parameter (``?name=Ada`` -> ``{"name": "Ada"}``)."""
    auth: dict[str, Any] = {k: v for k, v in request.query_params.items() if k not in _CONNECT_PARAMS}
    if token is None and authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    if token is not None:
        auth["token"] = token
    return auth


async def _read(request: Request, model: type[Body], limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over maxPayload ({limit})", maxPayload=limit)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLarge(f"body is over maxPayload ({limit} bytes)", maxPayload=limit)
    return model.parse(bytes(body))


def _body(model: type[Body]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema(by_alias=True)}},
        }
    }


def _ok(result: Any) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


def router(gateway: Gateway, shutdown: anyio.Event) -> APIRouter:
    """The SSE + POST endpoints over ``gateway``; ``shutdown`` is set when the server stops."""
    transport = SseTransport()
    gateway.add_transport(transport)
    api = APIRouter(prefix="/sse", tags=["SSE + POST"])
    limit = gateway.settings.max_payload

    @api.get(
        "/connect",
        response_class=EventSourceResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "The event stream"}},
        summary="Open (or resume) a session and receive its events",
    )
    async def connect(
        request: Request,
        namespace: str = Query("/", description="Namespace to connect to, e.g. /chat"),
        token: str | None = Query(None, description="Credential for the namespace's middleware"),
        sid: str | None = Query(None, description="Session to resume"),
        last_event_id_query: str | None = Query(None, alias="lastEventId", description="Resume cursor on a first connect"),
        last_event_id: str | None = Header(None, alias="Last-Event-ID"),
        authorization: str | None = Header(None),
        mode: Literal["stream", "poll"] = Query(
            "stream",
            description="poll: end the response after the first batch of events (or pingInterval "
            "without any); for proxies that buffer responses. Resume each poll with Last-Event-ID.",
        ),
    ) -> EventSourceResponse:
        cursor = last_event_id or last_event_id_query
        positions: dict[str, str] | None = None
        if cursor:
            cursor_sid, positions = parse_cursor(cursor)
            if sid is not None and sid != cursor_sid:
                raise BadLastEventId("Last-Event-ID belongs to another session than ?sid=")
            sid = cursor_sid
        channel = SseChannel(gateway)
        session = await gateway.connect(
            namespace, channel, _auth(request, token, authorization), resume_sid=sid, positions=positions
        )
        channel.session = session
        fresh = sid is None
        wait = gateway.settings.ping_interval

        async def stream() -> AsyncIterator[bytes]:
            try:
                gateway.activate(session)
                frames = channel.frames()
                async for chunk in frames:
                    yield chunk
                    if mode == "poll":
                        # A buffering proxy flushes a response only when it ends: end it
                        # as soon as there is something to hand over (a new session's
                        # handshake counts), else after one ping interval.
                        if not fresh and channel.payloads == 0:
                            with contextlib.suppress(TimeoutError, StopAsyncIteration):
                                yield await asyncio.wait_for(anext(frames), wait)
                        return
            finally:
                gateway.detach(session, channel, channel.cut or "stream closed")

        return EventSourceResponse(
            stream(),
            ping=gateway.settings.ping_interval,
            headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"},
            send_timeout=gateway.settings.ping_timeout,
            shutdown_event=shutdown,
            shutdown_grace_period=gateway.settings.shutdown_grace,
        )

    @api.post("/sessions/{sid}/join", openapi_extra=_body(JoinRequest), summary="Join a room")
    async def join(sid: str, request: Request) -> JSONResponse:
        return _ok(await gateway.request(sid, "join", await _read(request, JoinRequest, limit)))

    @api.post("/sessions/{sid}/leave", openapi_extra=_body(LeaveRequest), summary="Leave a room")
    async def leave(sid: str, request: Request) -> JSONResponse:
        return _ok(await gateway.request(sid, "leave", await _read(request, LeaveRequest, limit)))

    @api.post(
        "/sessions/{sid}/publish",
        openapi_extra=_body(PublishRequest),
        summary="Publish a room event; the ack carries its offset",
    )
    async def publish(sid: str, request: Request) -> JSONResponse:
        return _ok(await gateway.request(sid, "publish", await _read(request, PublishRequest, limit)))

    @api.post(
        "/sessions/{sid}/emit",
        openapi_extra=_body(EmitRequest),
        summary="Send an application event; the ack is the handler's return value",
    )
    async def emit(sid: str, request: Request) -> JSONResponse:
        return _ok(await gateway.request(sid, "emit", await _read(request, EmitRequest, limit)))

    @api.post(
        "/sessions/{sid}/ack",
        openapi_extra=_body(AckRequest),
        status_code=204,
        summary="Acknowledge a server call",
    )
    async def ack(sid: str, request: Request) -> Response:
        await gateway.request(sid, "ack", await _read(request, AckRequest, limit))
        return Response(status_code=204)

    @api.delete("/sessions/{sid}", status_code=204, summary="Close the session for good")
    async def close(sid: str) -> Response:
        await gateway.request(sid, "close", None)
        return Response(status_code=204)

    return api
