"""Volatile events over every transport and both brokers: not logged, no offset, never replayed,
dropped (and counted) for a connection that is not ready for them."""

from __future__ import annotations

import contextlib
import itertools
import re
import secrets
import socket
import uuid
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect

from rtclient import RoomEvent, SocketIOClient, SseClient
from rtclient.protocol import SseParser

from .drivers import Driver, expect_error
from .servers import REDIS_URL, ThreadedGateway, timeout

_n = itertools.count()
# A large event fills a reader's socket buffers in a few sends; random, so that WebSocket
# compression (uvicorn's default in these servers) cannot shrink it.
BLOB = secrets.token_urlsafe(300_000)


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request: pytest.FixtureRequest, redis_prefix: str):
    broker = "memory" if request.param == "memory" else REDIS_URL
    gw = ThreadedGateway(
        ping_interval=5.0, ping_timeout=5.0, recovery_window=30.0, broker=broker,
        redis_prefix=f"{redis_prefix}-volatile", session_publish_rate=1000, session_publish_burst=1000,
    ).start()
    yield gw
    gw.stop()


def room() -> str:
    return f"vol-{next(_n)}-{uuid.uuid4().hex[:6]}"


async def counter(url: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus counter from ``/metrics`` (0 before its first increment)."""
    async with httpx.AsyncClient(base_url=url, timeout=timeout(5)) as http:
        text = (await http.get("/metrics")).text
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}{{{inner}}} ([0-9.e+]+)$" if inner else rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(match[1]) if match else 0.0


async def pair(clients, transport: str, r: str) -> tuple[Driver, Driver]:
    a, b = clients(transport), clients(transport)
    for c in (a, b):
        await c.connect("/chat")
        await c.join(r)
    return a, b


async def test_volatile_publish_reaches_a_ready_member_without_an_offset(clients, transport):
    r = room()
    a, b = await pair(clients, transport, r)
    logged = await a.publish(r, "logged")
    ack = await a.publish(r, {"x": 1}, volatile=True)
    assert ack == {"room": r, "volatile": True}  # no offset: it is in no log
    got = await b.wait_room_events(r, 2)
    assert got[0]["offset"] == logged["offset"]
    assert got[1]["data"] == {"x": 1} and got[1]["offset"] is None and got[1]["volatile"] is True
    assert got[1]["sender"] == a.sid
    await a.publish(r, "self too", volatile=True, includeSelf=True)
    [mine] = await a.wait_room_events(r, 1)
    assert mine["data"] == "self too" and mine["volatile"] is True


async def test_volatile_events_take_no_offset_and_are_never_replayed(clients, transport, server: ThreadedGateway):
    r = room()
    a, b = await pair(clients, transport, r)
    first = await a.publish(r, 1)
    await b.wait_room_events(r, 1)
    await b.drop()
    await a.publish(r, "gone", volatile=True)
    second = await a.publish(r, 2)
    # The log holds the two logged events and nothing between them.
    replay = await server.arun(server.gateway.broker.replay("/chat", r, first["offset"]))
    assert [e.data for e in replay.events] == [2] and replay.events[0].offset == second["offset"]
    await b.connect("/chat", resume=True)
    [recovery] = await _recovered(b)
    assert recovery["replayed"] == 1 and recovery["complete"] is True
    await b.quiet()
    assert [e["data"] for e in b.room_events(r)] == [1, 2]  # the volatile one is not replayed


async def _recovered(driver: Driver) -> list[Any]:
    await driver.until(lambda: bool(driver.control("recovery")), what="recovery")
    return driver.control("recovery")


async def test_server_side_volatile_emit(clients, transport, server: ThreadedGateway):
    r = room()
    a, _ = await pair(clients, transport, r)
    assert await server.arun(server.gateway.emit("/chat", "tick", {"t": 1}, to=r, volatile=True)) is None
    [got] = await a.wait_room_events(r, 1)
    assert got["event"] == "tick" and got["offset"] is None and got["volatile"] is True and got["sender"] is None
    assert (await server.arun(server.gateway.broker.replay("/chat", r, "0-0"))).events == []


async def test_volatile_emit_is_answered_and_checked(clients, transport):
    c = clients(transport)
    await c.connect("/chat")
    if transport == "sse-post":
        assert await c.request("emit", {"event": "sum", "data": [1, 2], "volatile": True}) == 3
        await expect_error("validation_error", c.request("emit", {"event": "sum", "data": [1], "volatile": "yes"}))
    else:
        assert await c.request("sum", [1, 2], {"volatile": True}) == 3
        await expect_error("validation_error", c.request("sum", [1], {"volatile": 1}))
    await expect_error("validation_error", c.publish(room(), "x", volatile="yes"))


# -- members that are not ready --------------------------------------------------------


# A small receive buffer: left to autotuning, loopback takes tens of MB before a sender feels it.
SMALL_RCVBUF = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)]


class StalledSse:
    """An SSE stream that reads its open frame, joins a room, then stops reading."""

    async def open(self, url: str, r: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=timeout(10),
                                      transport=httpx.AsyncHTTPTransport(socket_options=SMALL_RCVBUF))
        self._stream = self.http.stream("GET", "/sse/connect", params={"namespace": "/chat"})
        response = await self._stream.__aenter__()
        # Kept: a reader that is let go of (garbage-collected) would close the stream.
        self._chunks = response.aiter_raw()
        parser, info = SseParser(), None
        while info is None:
            for frame in parser.feed(await self._chunks.__anext__()):
                if frame.event == "open":
                    info = orjson.loads(frame.data)
        joined = await self.http.post(f"/sse/sessions/{info['sid']}/join", json={"room": r},
                                      headers={"X-Session-Key": info["key"]})
        assert joined.status_code == 200, joined.text

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._stream.__aexit__(None, None, None)
        await self.http.aclose()


class StalledPolling:
    """A Socket.IO long-polling client that connects, joins a room, then stops polling."""

    async def open(self, url: str, r: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=timeout(10))
        answer = await self.http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        self.params = {"EIO": "4", "transport": "polling", "sid": orjson.loads(answer.text[1:])["sid"]}
        await self._post("40/chat,")
        await self._until('42/chat,["open"')
        await self._post(f'42/chat,0["join",{{"room":"{r}"}}]')
        await self._until("43/chat,0")

    async def _post(self, packet: str) -> None:
        sent = await self.http.post("/socket.io/", params=self.params, content=packet.encode(),
                                    headers={"Content-Type": "text/plain;charset=UTF-8"})
        assert sent.status_code == 200, sent.text

    async def _until(self, prefix: str) -> None:
        while True:
            packets = (await self.http.get("/socket.io/", params=self.params)).text.split("\x1e")
            if "2" in packets:
                await self._post("3")
            if any(p.startswith(prefix) for p in packets):
                return

    async def close(self) -> None:
        await self.http.aclose()


class StalledWebSocket:
    """A Socket.IO client on a WebSocket that connects, joins a room, then stops reading
    (``max_queue=1``: the library pauses reading once a message waits)."""

    async def open(self, url: str, r: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(*SMALL_RCVBUF[0])
        sock.connect((host, int(port)))
        sock.setblocking(False)
        self.ws = await ws_connect(f"ws{url[4:]}/socket.io/?EIO=4&transport=websocket", sock=sock,
                                   max_queue=1, max_size=None)
        await self.ws.recv()  # Engine.IO open
        await self.ws.send("40/chat,")
        await self._until('42/chat,["open"')
        await self.ws.send(f'42/chat,0["join",{{"room":"{r}"}}]')
        await self._until("43/chat,0")

    async def _until(self, prefix: str) -> None:
        while not str(await self.ws.recv()).startswith(prefix):
            pass

    async def close(self) -> None:
        self.ws.transport.abort()


STALLED = {"sse-post": StalledSse, "socketio-polling": StalledPolling, "socketio-websocket": StalledWebSocket}


async def test_a_member_not_ready_drops_volatile_events_and_they_are_counted(clients, transport, server):
    r = room()
    publisher = clients(transport)  # alone with the stalled member: every drop counted is the latter's
    await publisher.connect("/chat")
    await publisher.join(r)
    stalled = STALLED[transport]()
    await stalled.open(server.url, r)
    try:
        before = await counter(server.url, "gateway_dropped_total", reason="volatile_not_ready")
        cut_before = await counter(server.url, "gateway_dropped_total", reason="slow_consumer")
        for _ in range(60):  # bounded: each send fills the stalled reader's buffers further
            await publisher.publish(r, {"blob": BLOB}, volatile=True)
            if await counter(server.url, "gateway_dropped_total", reason="volatile_not_ready") > before:
                break
        else:
            raise AssertionError("no volatile event was dropped for a member that stopped reading")
        # Dropped, not cut: a volatile event never makes a slow consumer.
        assert await counter(server.url, "gateway_dropped_total", reason="slow_consumer") == cut_before
    finally:
        await stalled.close()


# -- rtclient ---------------------------------------------------------------------------


def rtclient(kind: str, url: str) -> SseClient | SocketIOClient:
    return SseClient(url, "/chat") if kind == "sse" else SocketIOClient(url, "/chat", transports=[kind])


async def room_event(client: SseClient | SocketIOClient) -> RoomEvent:
    while True:
        event = await client.next_event(timeout(10))
        if isinstance(event, RoomEvent):
            return event


@pytest.mark.parametrize("kind", ["sse", "websocket", "polling"])
async def test_rtclient_volatile_publish_moves_no_resume_position(kind: str, server: ThreadedGateway):
    r = room()
    pub, sub = rtclient(kind, server.url), rtclient(kind, server.url)
    assert await pub.publish(r, "nowhere", volatile=True) is None  # not connected: dropped, counted
    assert pub.state.stats.volatile_dropped == 1
    try:
        for c in (pub, sub):
            await c.connect()
            await c.join(r)
        logged = await pub.publish(r, "logged")
        assert (await room_event(sub)).offset == logged["offset"]
        assert await pub.publish(r, {"at": 1}, volatile=True) == {"room": r, "volatile": True}
        got = await room_event(sub)
        assert got.volatile and got.offset is None and got.data == {"at": 1} and got.sender == pub.sid
        assert sub.state.positions[r] == logged["offset"]  # the resume position did not move
        assert f"{r}={logged['offset']}" in (sub.state.cursor or "")
        assert await pub.emit("sum", [2, 3], volatile=True) == 5
    finally:
        for c in (pub, sub):
            await c.close()
