"""Test drivers: one small async API over each client transport, built on real clients.

``socketio-websocket`` and ``socketio-polling`` use python-socketio's ``AsyncClient``;
``sse-post`` uses httpx with httpx-sse. The conformance suite runs the same tests
through each of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import engineio.payload
import httpx
import orjson
import socketio
from httpx_sse import EventSource

from gateway.wire.errors import GatewayError, error_from_wire
from rtclient._engineio_fence import abandon, goodbye

from .servers import timeout

TRANSPORTS = ["socketio-websocket", "socketio-polling", "sse-post"]

# python-engineio's client refuses a polling response of more than 16 packets
# ("Unexpected packet from server"); a resumed session's replay is easily more.
engineio.payload.Payload.max_decode_packets = 4096
NO_ANSWER = object()
# The gateway's own frames, and its presence announcements (volatile room events on namespaces
# that turn them on, such as the demo's /chat): neither is a room event a test publishes.
CONTROL = {"open", "recovery", "joined", "left", "close", "call", "presence.join", "presence.leave"}


class Driver:
    """Common bookkeeping: received frames, tracked offsets, waiting."""

    transport: str

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[tuple[str, Any]] = []
        self.offsets: dict[str, str] = {}
        self.sid: str | None = None
        self.key: str | None = None  # the session's private key, from its open frame
        self.info: dict[str, Any] = {}
        self.namespace = "/"
        self.answer: Callable[[str, Any], Any] = lambda event, data: NO_ANSWER
        self._changed = asyncio.Event()

    # -- received frames ---------------------------------------------------------

    def _received(self, event: str, data: Any) -> None:
        self.frames.append((event, data))
        if event not in CONTROL and isinstance(data, dict) and isinstance(data.get("offset"), str):  # not volatile
            self.offsets[data["room"]] = data["offset"]
        self._changed.set()

    def room_events(self, room: str | None = None) -> list[dict[str, Any]]:
        return [
            d for e, d in self.frames
            if e not in CONTROL and isinstance(d, dict) and "offset" in d and (room is None or d["room"] == room)
        ]

    def control(self, name: str) -> list[Any]:
        return [d for e, d in self.frames if e == name]

    async def until(self, predicate: Callable[[], bool], wait: float = 5, what: str = "") -> None:
        """Wait until ``predicate()`` holds, re-checking on each new frame; fail after ``wait`` s."""
        async def watch() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(watch(), timeout(wait))
        except TimeoutError:
            raise AssertionError(f"{self.transport}: timed out waiting for {what or predicate}; got {self.frames[-10:]}") from None

    async def wait_room_events(self, room: str, count: int, wait: float = 5) -> list[dict[str, Any]]:
        await self.until(lambda: len(self.room_events(room)) >= count, wait, f"{count} events in {room}")
        return self.room_events(room)

    async def quiet(self, seconds: float = 0.3) -> None:
        """Give in-flight frames a moment to arrive before asserting that something did NOT arrive."""
        await asyncio.sleep(seconds)

    # -- requests ----------------------------------------------------------------

    async def join(self, room: str) -> Any:
        return await self.request("join", {"room": room})

    async def leave(self, room: str) -> Any:
        return await self.request("leave", {"room": room})

    async def publish(self, room: str, data: Any = None, **extra: Any) -> Any:
        return await self.request("publish", {"room": room, "data": data, **extra})


class SocketIODriver(Driver):
    def __init__(self, url: str, transports: list[str]) -> None:
        super().__init__(url)
        self.transports = transports
        self.transport = "socketio-" + transports[-1]
        self.client: socketio.AsyncClient | None = None

    async def connect(
        self, namespace: str = "/chat", auth: dict[str, Any] | None = None, *, resume: bool = False
    ) -> dict[str, Any]:
        self.namespace = namespace
        auth = dict(auth or {})
        if resume:
            auth.update(sid=self.sid, key=self.key, offsets=dict(self.offsets))
        client = self.client = socketio.AsyncClient(reconnection=False)
        refused: list[Any] = []
        opened = len(self.control("open"))

        @client.on("*", namespace=namespace)
        async def any_event(event: str, *args: Any) -> Any:
            data = args[0] if args else None
            self._received(event, data)
            reply = self.answer(event, data)
            if reply is NO_ANSWER:
                # python-socketio acks every event that asks for it; the closest thing to
                # a client that never answers is one that answers far too late.
                await asyncio.sleep(timeout(3))
                return None
            return reply

        @client.on("disconnect", namespace=namespace)
        async def disconnected(reason: Any = None) -> None:
            self._received("__disconnect__", reason)

        @client.on("connect_error", namespace=namespace)
        async def connect_error(data: Any) -> None:
            refused.append(data)
            self._changed.set()

        # wait=False: on a refusal python-socketio's own wait would disconnect the slow way
        # (see ``goodbye``); the gateway's answer is awaited here instead, open or refusal.
        try:
            await client.connect(self.url, namespaces=[namespace], transports=self.transports,
                                 auth=auth or None, wait=False)
            await self.until(lambda: bool(refused) or len(self.control("open")) > opened, what="open")
        except BaseException:
            await goodbye(client)
            raise
        if refused:
            await goodbye(client)
            if isinstance(refused[0], dict) and isinstance(refused[0].get("data"), dict):
                raise error_from_wire(refused[0]["data"])
            raise socketio.exceptions.ConnectionError(f"{namespace} refused: {refused[0]!r}")
        self.info = self.control("open")[-1]
        self.sid, self.key = self.info["sid"], self.info["key"]
        return self.info

    async def request(self, kind: str, body: Any, *more: Any) -> Any:
        assert self.client is not None
        data = (body, *more) if more else body
        reply = await self.client.call(kind, data, namespace=self.namespace, timeout=timeout(5))
        if not reply.get("ok"):
            raise error_from_wire(reply["error"])
        return reply["result"]

    async def emit(self, event: str, data: Any = None, client_event_id: str | None = None) -> Any:
        if client_event_id is None:
            return await self.request(event, data)
        return await self.request(event, data, {"clientEventId": client_event_id})

    def upgraded(self) -> str:
        assert self.client is not None
        return self.client.transport()

    async def drop(self) -> None:
        """Lose the connection without saying goodbye (what a network failure looks like)."""
        if self.client is not None:
            await abandon(self.client)
            self.client = None

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await goodbye(client)


class SseDriver(Driver):
    transport = "sse-post"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.http = httpx.AsyncClient(base_url=url, timeout=timeout(10))
        self.last_event_id: str | None = None
        self._stream: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[httpx.Response]] = set()  # kept until done (or dropped)

    async def connect(
        self, namespace: str = "/chat", auth: dict[str, Any] | None = None, *, resume: bool = False,
        headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        self.namespace = namespace
        query = {"namespace": namespace, **(params or {})}
        head = dict(headers or {})
        if auth and auth.get("token"):
            head["Authorization"] = f"Bearer {auth['token']}"
        elif auth and "token" in auth:  # an empty token cannot be a header value
            query["token"] = auth["token"]
        if resume and self.last_event_id:
            head["Last-Event-ID"] = self.last_event_id
        stream = self.http.stream("GET", "/sse/connect", params=query, headers=head)
        response = await stream.__aenter__()
        if response.status_code != 200:
            body = await response.aread()
            await stream.__aexit__(None, None, None)
            raise error_from_wire(orjson.loads(body))
        self._stream = stream
        opened = len(self.control("open"))
        self._reader = asyncio.create_task(self._read(response))
        await self.until(lambda: len(self.control("open")) > opened, what="open")
        self.info = self.control("open")[-1]
        self.sid, self.key = self.info["sid"], self.info["key"]
        return self.info

    async def _read(self, response: httpx.Response) -> None:
        with contextlib.suppress(httpx.HTTPError):
            async for sse in EventSource(response).aiter_sse():
                if sse.id:
                    self.last_event_id = sse.id
                data = orjson.loads(sse.data) if sse.data else None
                self._received(sse.event, data)
                if sse.event == "call":
                    reply = self.answer(data["event"], data["data"])
                    if reply is not NO_ANSWER:
                        answer = asyncio.create_task(self.ack(data["ackId"], reply))
                        self._answering.add(answer)
                        answer.add_done_callback(self._answering.discard)
        self._received("__end__", None)

    def key_header(self) -> dict[str, str]:
        return {"X-Session-Key": self.key} if self.key else {}

    async def post(self, path: str, body: Any) -> httpx.Response:
        # the stdlib encoder: it writes what orjson refuses (300 levels deep, NaN), as attackers do
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post(
            f"/sse/sessions/{self.sid}/{path}", content=content,
            headers={"content-type": "application/json", **self.key_header()},
        )

    async def request(self, kind: str, body: Any) -> Any:
        response = await self.post(kind, body)
        if response.status_code >= 400:
            raise error_from_wire(response.json())
        return response.json()["result"] if response.content else None

    async def emit(self, event: str, data: Any = None, client_event_id: str | None = None) -> Any:
        body: dict[str, Any] = {"event": event, "data": data}
        if client_event_id is not None:
            body["clientEventId"] = client_event_id
        return await self.request("emit", body)

    async def ack(self, ack_id: str, result: Any) -> httpx.Response:
        return await self.post("ack", {"ackId": ack_id, "result": result})

    def upgraded(self) -> str:
        return "sse"

    async def drop(self) -> None:
        for task in [*self._answering, *([self._reader] if self._reader is not None else [])]:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._reader = None
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.__aexit__(None, None, None)
            self._stream = None

    async def close(self) -> None:
        if self.sid is not None and self._stream is not None:
            await self.http.delete(f"/sse/sessions/{self.sid}", headers=self.key_header())
        await self.drop()
        await self.http.aclose()


def make_driver(transport: str, url: str) -> Driver:
    if transport == "socketio-websocket":
        return SocketIODriver(url, ["websocket"])
    if transport == "socketio-polling":
        return SocketIODriver(url, ["polling"])
    if transport == "sse-post":
        return SseDriver(url)
    raise ValueError(transport)


async def expect_error(code: str, awaitable: Any) -> GatewayError:
    """Await and require a ``GatewayError`` with ``code``."""
    try:
        await awaitable
    except GatewayError as exc:
        assert exc.code == code, f"expected {code}, got {exc.code}: {exc}"
        return exc
    raise AssertionError(f"expected error {code}, got success")
