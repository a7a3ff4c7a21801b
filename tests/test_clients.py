"""rtclient against a real gateway: the same guarantees over SSE + POST and Socket.IO."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator

import jwt
import pytest

from gateway.wire.errors import ForbiddenRoom, InvalidToken, TokenExpired, UnknownNamespace
from rtclient import Closing, Gap, Opened, Recovery, RoomEvent, SessionEnded, SocketIOClient, SseClient

from .drivers import Driver, make_driver
from .servers import ThreadedGateway, timeout

KINDS = ["sse", "socketio-websocket", "socketio-polling"]


def make(kind: str, url: str, namespace: str = "/chat", **options):
    if kind == "sse":
        return SseClient(url, namespace, **options)
    return SocketIOClient(url, namespace, transports=[kind.split("-")[1]], **options)


SECRET = "rtclient-test-secret-0123456789-abcdef"  # HS256: 32+ characters


def mint(lifetime: float, sub: str = "ada", secret: str = SECRET) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time() + lifetime)}, secret, algorithm="HS256")


@pytest.fixture(scope="module")
def jwt_server() -> Iterator[ThreadedGateway]:
    """A gateway that verifies JWTs (``/chat`` still takes anonymous connects too)."""
    gw = ThreadedGateway(jwt_secret=SECRET, ping_interval=1.0, ping_timeout=1.0, recovery_window=30.0).start()
    yield gw
    gw.stop()


async def next_matching(client, predicate: Callable[[object], bool], wait: float = 10) -> object:
    """The next event the client hands out that satisfies ``predicate`` (others are skipped)."""
    async def look() -> object:
        while True:
            event = await client.next_event(timeout(wait))
            if predicate(event):
                return event
    return await asyncio.wait_for(look(), timeout(wait))


async def take_over(kind: str, url: str, client) -> Driver:
    """Resume ``client``'s session from a second, low-level connection, with its sid and key."""
    thief = make_driver("sse-post" if kind == "sse" else kind, url)
    if kind == "sse":
        thief.last_event_id = client.state.cursor  # the cursor the client built: sid:key;rooms
    else:
        thief.sid, thief.key = client.sid, client.state.key
    await thief.connect("/chat", resume=True)
    assert thief.sid == client.sid
    return thief


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
    with pytest.raises(UnknownNamespace):  # no GATEWAY_ADMIN_TOKEN: no /admin at all
        await make(kind, server.url, "/admin", token="wrong").connect()
    await c.close()


async def test_drop_resume_delivers_everything_once_in_order(server: ThreadedGateway, kind: str):
    room = f"r-{uuid.uuid4().hex[:8]}"
    sub = make(kind, server.url, backoff=None)
    sub.backoff.base = 0.05
    pub = make("sse", server.url)
    await sub.connect(), await pub.connect()
    await sub.join(room), await pub.join(room)
    sid, key = sub.sid, sub.state.key
    assert key and key != sid and len(key) == 22
    for i in range(5):
        await pub.publish(room, i)
    first = await room_events(sub, 5)
    await sub.drop()
    for i in range(5, 15):
        await pub.publish(room, i)
    rest = await room_events(sub, 10)
    assert sub.sid == sid and sub.state.key == key and sub.state.stats.reconnects >= 1
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
    gap = next(e for e in seen if isinstance(e, Gap))
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


# -- the private session key, ``replaced`` and ``token_expired`` --------------------------


async def test_replaced_stops_the_client_for_good(server: ThreadedGateway, kind: str):
    room = f"x-{uuid.uuid4().hex[:8]}"
    victim = make(kind, server.url)
    victim.backoff.base = 0.05  # were it to reconnect, it would do so at once
    await victim.connect()
    await victim.join(room)
    sid = victim.sid
    seen: list = []

    async def consume() -> None:
        async for event in victim.events():
            seen.append(event)

    consumer = asyncio.create_task(consume())
    # A request waiting for the connection, as one does while the client reconnects.
    victim._connected.clear()
    pending = asyncio.create_task(victim.publish(room, "never sent"))
    thief = await take_over(kind, server.url, victim)
    try:
        assert room in thief.info["rooms"]
        await asyncio.wait_for(consumer, timeout(10))  # events() ends after the final Closing
        assert seen[-1] == Closing("close", "replaced", False)
        with pytest.raises(SessionEnded) as err:
            await asyncio.wait_for(pending, timeout(5))
        assert err.value.reason == "replaced" and "another connection" in str(err.value)
        with pytest.raises(SessionEnded):
            await victim.join("anything")
        await asyncio.wait_for(victim._supervisor, timeout(5))  # no reconnect loop left
        assert victim.state.stats.reconnects == 0 and victim.ended is not None
        await victim.close()  # releases the client; says nothing: the session is the thief's now
        assert await thief.join(f"{room}-2")
        assert (await thief.publish(room, "mine"))["offset"]
        assert server.session_state(sid) == "connected"
        assert thief.control("close") == []
    finally:
        await thief.close()


async def test_token_callback_is_asked_again_after_token_expired(jwt_server: ThreadedGateway, kind: str):
    room = f"t-{uuid.uuid4().hex[:8]}"
    issued: list[str] = []

    async def token() -> str:  # async: the asyncio clients await it
        issued.append(mint(2 if not issued else 60, sub=f"ada-{kind}"))
        return issued[-1]

    sub = make(kind, jwt_server.url, token=token)
    sub.backoff.base = 0.05
    requests: list = []
    if kind == "sse":
        async def record(request) -> None:
            requests.append(request)
        sub.http.event_hooks["request"].append(record)
    pub = make("sse", jwt_server.url)  # anonymous
    await sub.connect(), await pub.connect()
    await sub.join(room), await pub.join(room)
    sid, key = sub.sid, sub.state.key
    assert len(issued) == 1
    closing = await next_matching(sub, lambda e: isinstance(e, Closing), wait=10)
    assert closing == Closing("close", "token_expired", True)
    opened = await next_matching(sub, lambda e: isinstance(e, Opened), wait=10)
    assert opened.resumed and sub.sid == sid and sub.state.key == key
    assert len(issued) == 2 and sub.ended is None
    await pub.publish(room, "after")
    assert [e.data for e in await room_events(sub, 1)] == ["after"]
    assert await sub.emit("sum", [1, 2]) == 3
    if kind == "sse":
        connects = [r for r in requests if r.url.path == "/sse/connect"]
        assert [r.headers["authorization"] for r in connects[:2]] == [f"Bearer {t}" for t in issued]
        assert all("token" not in r.url.params for r in connects)
        assert connects[1].headers["last-event-id"].startswith(f"{sid}:{key};")
        posts = [r for r in requests if r.method in ("POST", "DELETE")]
        assert posts and all(r.headers["x-session-key"] == key for r in posts)
        assert all(r.headers["content-type"] == "application/json" for r in posts)
    await sub.close(), await pub.close()


async def test_a_token_string_works_and_bad_tokens_are_typed(jwt_server: ThreadedGateway, kind: str):
    c = make(kind, jwt_server.url, token=mint(60, sub=f"bob-{kind}"))
    await c.connect()
    assert (await c.emit("whoami"))["user"] == f"bob-{kind}"
    await c.close()
    with pytest.raises(TokenExpired):
        await make(kind, jwt_server.url, token=mint(-30)).connect()
    with pytest.raises(InvalidToken):
        await make(kind, jwt_server.url, token=lambda: mint(60, secret="another-secret-0123456789-abcdefgh")).connect()
