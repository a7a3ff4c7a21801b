"""rtclient against a real gateway: the same guarantees over SSE + POST and Socket.IO."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.errors import ForbiddenRoom, InvalidToken
from rtclient import Gap, Recovery, RoomEvent, SocketIOClient, SseClient

from .servers import ThreadedGateway, timeout

KINDS = ["sse", "socketio-websocket", "socketio-polling"]


def make(kind: str, url: str, namespace: str = "/chat", **options):
    if kind == "sse":
        return SseClient(url, namespace, **options)
    return SocketIOClient(url, namespace, transports=[kind.split("-")[1]], **options)


async def room_events(client, count: int, wait: float = 10) -> list[RoomEvent]:
    got: list[RoomEvent] = []
    async def collect() -> None:
        while len(got) < count:
            event = await client.next_event(timeout(wait))
            if isinstance(event, RoomEvent):
                got.append(event)
    await asyncio.wait_for(collect(), timeout(wait))
    return got


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


async def test_publish_ack_and_delivery(server: ThreadedGateway, kind: str):
    room = f"c-{uuid.uuid4().hex[:8]}"
    a, b = make(kind, server.url), make("sse" if kind != "sse" else "socketio-websocket", server.url)
    await a.connect(), await b.connect()
    await a.join(room), await b.join(room)
    acks = [await a.publish(room, {"n": i}) for i in range(5)]
    got = await room_events(b, 5)
    assert [e.data["n"] for e in got] == list(range(5))
    assert [e.offset for e in got] == [x["offset"] for x in acks]
    assert all(e.client_event_id for e in got)  # the outbox gave every publish an id
    assert await a.emit("sum", [2, 3]) == 5
    assert len(a.state.outbox) == 0
    await a.close(), await b.close()


async def test_refusals_are_typed(server: ThreadedGateway, kind: str):
    c = make(kind, server.url)
    await c.connect()
    with pytest.raises(ForbiddenRoom) as err:
        await c.join("private:x")
    assert err.value.code == "forbidden_room"
    with pytest.raises(InvalidToken):
        await make(kind, server.url, "/admin", token="wrong").connect()
    await c.close()


async def test_drop_resume_delivers_everything_once_in_order(server: ThreadedGateway, kind: str):
    room = f"r-{uuid.uuid4().hex[:8]}"
    sub = make(kind, server.url, backoff=None)
    sub.backoff.base = 0.05
    pub = make("sse", server.url)
    await sub.connect(), await pub.connect()
    await sub.join(room), await pub.join(room)
    sid = sub.sid
    for i in range(5):
        await pub.publish(room, i)
    first = await room_events(sub, 5)
    await sub.drop()
    for i in range(5, 15):
        await pub.publish(room, i)
    rest = await room_events(sub, 10)
    assert sub.sid == sid and sub.state.stats.reconnects >= 1
    assert [e.data for e in first + rest] == list(range(15))
    assert sub.state.stats.duplicates >= 0 and sub.state.stats.gaps == 0
    await sub.close(), await pub.close()


async def test_gap_is_surfaced_as_an_event(server: ThreadedGateway):
    room = f"g-{uuid.uuid4().hex[:8]}"
    sub, pub = make("sse", server.url), make("sse", server.url)
    sub.backoff.base = 1.0  # first reconnect after 0.5-1 s: the burst below overflows the log first
    await sub.connect(), await pub.connect()
    await sub.join(room), await pub.join(room)
    await pub.publish(room, "first")
    await room_events(sub, 1)
    await sub.drop()
    # sub's supervisor reconnects on its own; publish fast enough to overflow the log first
    burst = [pub.publish(room, i) for i in range(server.settings.log_max_length + 10)]
    await asyncio.gather(*burst)
    seen: list = []
    async def until_gap() -> None:
        while not any(isinstance(e, Gap) for e in seen):
            seen.append(await sub.next_event(timeout(10)))
    await asyncio.wait_for(until_gap(), timeout(15))
    recovery = [e for e in seen if isinstance(e, Recovery)]
    gap = [e for e in seen if isinstance(e, Gap)][0]
    assert recovery and not recovery[0].complete
    assert gap.room == room and gap.reason == "log_trimmed"
    await sub.close(), await pub.close()


async def test_server_call_answered_by_handler(server: ThreadedGateway, kind: str):
    c = make(kind, server.url)
    c.on_call("double", lambda x: x * 2)
    await c.connect()
    assert await server.arun(server.gateway.call("/chat", c.sid, "double", 21)) == 42
    await c.close()


async def test_malformed_frame_is_refused_and_connection_kept(server: ThreadedGateway):
    c = make("sse", server.url)
    await c.connect()
    from rtclient.protocol import ProtocolError

    with pytest.raises(ProtocolError):
        c.state.handle_raw("message", "{not json")
    with pytest.raises(ProtocolError):
        c.state.handle("message", {"no": "offset"})
    assert c.state.stats.malformed == 2
    assert await c.emit("echo", "still usable") == "still usable"
    await c.close()


async def test_buffering_proxy_sse_falls_back_to_polling(server: ThreadedGateway):
    from comparison.proxy import ProxyProcess

    from rtclient import ConnectionLost

    with ProxyProcess(server.url, "buffering", "--buffer-kib", "64") as proxy:
        naive = SseClient(proxy.url, "/chat", mode="stream", request_timeout=2)
        with pytest.raises((ConnectionLost, TimeoutError)):
            await naive.connect()  # the open frame sits in the proxy's buffer
        sub = SseClient(proxy.url, "/chat", buffer_timeout=1.0)
        pub = SseClient(server.url, "/chat")
        await sub.connect(), await pub.connect()
        assert sub.polling  # detected the buffering, switched modes
        room = f"b-{uuid.uuid4().hex[:8]}"
        await sub.join(room), await pub.join(room)
        for i in range(5):
            await pub.publish(room, i)
        got = await room_events(sub, 5)
        assert [e.data for e in got] == list(range(5)) and sub.state.stats.duplicates == 0
        await sub.close(), await pub.close()
        await naive.http.aclose()
