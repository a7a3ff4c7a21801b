"""The same semantics on every transport: each test runs over socketio-websocket,
socketio-polling and sse-post against a real gateway."""

from __future__ import annotations

import itertools
import time
import uuid

import httpx
import pytest

from gateway.wire.errors import AckTimeout, SessionClosed

from .drivers import TRANSPORTS, expect_error
from .servers import REDIS_URL, ThreadedGateway, timeout

ADMIN_PASSWORD = "conformance-admin-password"
_n = itertools.count()


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request: pytest.FixtureRequest, redis_prefix: str):
    """The whole suite runs once per broker: one node in memory, and one on Redis."""
    broker = "memory" if request.param == "memory" else REDIS_URL
    gw = ThreadedGateway(
        ping_interval=1.0, ping_timeout=1.0, log_max_length=20, call_timeout=2.0,
        recovery_window=30.0, broker=broker, redis_prefix=redis_prefix, admin_token=ADMIN_PASSWORD,
    ).start()
    yield gw
    gw.stop()


def room() -> str:
    return f"room-{next(_n)}-{uuid.uuid4().hex[:6]}"


async def test_handshake_gives_sid_and_timings(clients, transport, server: ThreadedGateway):
    c = clients(transport)
    info = await c.connect("/chat")
    assert len(info["sid"]) >= 22  # 16 random bytes, URL-safe base64
    assert info["namespace"] == "/chat"
    assert info["pingInterval"] == 1000 and info["pingTimeout"] == 1000
    assert info["maxPayload"] == server.settings.max_payload
    other = clients(transport)
    assert (await other.connect("/chat"))["sid"] != info["sid"]


async def test_socketio_default_client_upgrades_to_websocket(clients):
    from .drivers import SocketIODriver

    c = SocketIODriver(clients("sse-post").url, ["polling", "websocket"])
    await c.connect("/chat")
    await c.until(lambda: c.upgraded() == "websocket", what="upgrade")
    await c.close()


async def test_publish_reaches_members_but_not_sender(clients, transport):
    r = room()
    a, b, outsider = clients(transport), clients(transport), clients(transport)
    for c in (a, b, outsider):
        await c.connect("/chat")
    await a.join(r)
    await b.join(r)
    ack = await a.publish(r, {"text": "hi"})
    assert ack["room"] == r and "-" in ack["offset"]
    [got] = await b.wait_room_events(r, 1)
    assert got["data"] == {"text": "hi"} and got["sender"] == a.sid and got["offset"] == ack["offset"]
    await a.publish(r, "echo", includeSelf=True)
    await a.wait_room_events(r, 1)
    await outsider.quiet()
    assert a.room_events(r)[0]["data"] == "echo"  # the first one skipped its sender
    assert outsider.room_events(r) == []


async def test_offsets_increase_and_order_is_kept(clients, transport):
    r = room()
    a, b = clients(transport), clients(transport)
    await a.connect("/chat"), await b.connect("/chat")
    await a.join(r), await b.join(r)
    acks = [await a.publish(r, i) for i in range(10)]
    got = await b.wait_room_events(r, 10)
    assert [e["data"] for e in got] == list(range(10))
    assert [e["offset"] for e in got] == [x["offset"] for x in acks]
    pairs = [tuple(map(int, o["offset"].split("-"))) for o in acks]
    assert pairs == sorted(pairs) and len(set(pairs)) == 10


async def test_leave_stops_delivery(clients, transport):
    r = room()
    a, b = clients(transport), clients(transport)
    await a.connect("/chat"), await b.connect("/chat")
    await a.join(r), await b.join(r)
    await b.leave(r)
    await a.publish(r, "after leave")
    await b.quiet()
    assert b.room_events(r) == []
    await expect_error("not_joined", b.publish(r, "x"))


async def test_namespaces_are_isolated(clients, transport):
    r = room()
    chat, root = clients(transport), clients(transport)
    await chat.connect("/chat"), await root.connect("/")
    await chat.join(r), await root.join(r)
    await chat.publish(r, "chat only", includeSelf=True)
    await root.publish(r, "root only", includeSelf=True)
    await chat.wait_room_events(r, 1)
    await root.wait_room_events(r, 1)
    await chat.quiet()
    assert [e["data"] for e in chat.room_events(r)] == ["chat only"]
    assert [e["data"] for e in root.room_events(r)] == ["root only"]


async def test_unknown_namespace_is_refused(clients, transport):
    await expect_error("unknown_namespace", clients(transport).connect("/nope"))


async def test_server_emits_to_sid_room_and_namespace(clients, transport, server: ThreadedGateway):
    r = room()
    a, b = clients(transport), clients(transport)
    await a.connect("/chat"), await b.connect("/chat")
    await a.join(r)
    await server.arun(server.gateway.emit("/chat", "notice", {"to": "a"}, to=a.sid))
    await server.arun(server.gateway.emit("/chat", "news", "room", to=r))
    await server.arun(server.gateway.emit("/chat", "everyone", "all"))
    await a.until(lambda: {e["event"] for e in a.room_events()} >= {"notice", "news", "everyone"})
    await b.until(lambda: any(e["event"] == "everyone" for e in b.room_events()))
    await b.quiet()
    assert {e["event"] for e in b.room_events()} == {"everyone"}
    personal = next(e for e in a.room_events() if e["event"] == "notice")
    assert personal["room"] == a.sid and personal["sender"] is None


def admin_token(server: ThreadedGateway) -> str:
    """What the demo page does: exchange the admin password for a JWT."""
    answer = httpx.post(f"{server.url}/demo/token", json={"password": ADMIN_PASSWORD}, timeout=timeout(5))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


async def test_admin_namespace_emits_into_chat(clients, transport, server: ThreadedGateway):
    r = room()
    admin, member = clients(transport), clients(transport)
    await member.connect("/chat")
    await member.join(r)
    await admin.connect("/admin", {"token": admin_token(server)})
    ack = await admin.emit("broadcast", {"room": r, "event": "announcement", "data": "maintenance"})
    [got] = await member.wait_room_events(r, 1)
    assert got["event"] == "announcement" and got["offset"] == ack["offset"]


@pytest.mark.parametrize(
    ("auth", "code"),
    [(None, "unauthorized"), ({"token": ""}, "malformed_token"), ({"token": "wrong"}, "malformed_token")],
)
async def test_admin_refuses_bad_tokens(clients, transport, auth, code):
    await expect_error(code, clients(transport).connect("/admin", auth))


async def test_join_hook_forbids_private_rooms(clients, transport, server: ThreadedGateway):
    guest, admin = clients(transport), clients(transport)
    await guest.connect("/chat")
    await expect_error("forbidden_room", guest.join("private:ops"))
    assert "private:ops" not in (await guest.emit("whoami"))["rooms"]
    await admin.connect("/chat", {"token": admin_token(server)})
    await admin.join("private:ops")
    assert "private:ops" in (await admin.emit("whoami"))["rooms"]


async def test_personal_room_of_another_session_is_forbidden(clients, transport):
    a, b = clients(transport), clients(transport)
    await a.connect("/chat"), await b.connect("/chat")
    await expect_error("forbidden_room", b.join(a.sid))
    await expect_error("forbidden_room", a.leave(a.sid))


async def test_publish_to_unjoined_room_is_refused_and_logs_nothing(clients, transport, server):
    r = room()
    a, b = clients(transport), clients(transport)
    await a.connect("/chat"), await b.connect("/chat")
    before = await b.join(r)
    await expect_error("not_joined", a.publish(r, "sneaky"))
    await b.publish(r, "legit", includeSelf=True)
    logged = await server.arun(server.gateway.broker.replay("/chat", r, before["offset"]))
    assert [e.data for e in logged.events] == ["legit"]  # the refusal logged nothing


async def test_application_event_ack_is_handler_return(clients, transport):
    c = clients(transport)
    await c.connect("/chat")
    assert await c.emit("sum", [1, 2, 3.5]) == 6.5
    assert (await c.emit("whoami"))["sid"] == c.sid
    await expect_error("unknown_event", c.emit("no-such-event", 1))
    await expect_error("validation_error", c.emit("sum", "not a list"))


async def test_server_call_gets_client_ack(clients, transport, server: ThreadedGateway):
    c = clients(transport)
    c.answer = lambda event, data: {"pong": data} if event == "ping-me" else None
    await c.connect("/chat")
    result = await server.arun(server.gateway.call("/chat", c.sid, "ping-me", 41))
    assert result == {"pong": 41}


async def test_server_call_times_out_with_one_error_type(clients, transport, server: ThreadedGateway):
    from .drivers import NO_ANSWER

    c = clients(transport)
    c.answer = lambda event, data: NO_ANSWER
    await c.connect("/chat")
    with pytest.raises(AckTimeout) as err:
        await server.arun(server.gateway.call("/chat", c.sid, "silence", None, timeout=0.3))
    assert isinstance(err.value, TimeoutError) and err.value.code == "ack_timeout"


async def test_pending_call_is_cancelled_on_disconnect(clients, transport, server: ThreadedGateway):
    import asyncio

    from .drivers import NO_ANSWER

    c = clients(transport)
    c.answer = lambda event, data: NO_ANSWER
    await c.connect("/chat")
    call = asyncio.ensure_future(server.arun(server.gateway.call("/chat", c.sid, "hold", None, timeout=20), wait=20))
    await c.until(lambda: bool(c.control("call")) or any(e == "hold" for e, _ in c.frames), what="call")
    await c.drop()
    with pytest.raises(SessionClosed):
        await call


async def test_client_event_id_is_deduplicated(clients, transport):
    r = room()
    a, b = clients(transport), clients(transport)
    await a.connect("/chat"), await b.connect("/chat")
    await a.join(r), await b.join(r)
    first = await a.publish(r, "once", clientEventId="evt-1")
    again = await a.publish(r, "once", clientEventId="evt-1")
    assert again == first
    await a.publish(r, "marker")
    await b.wait_room_events(r, 2)
    assert [e["data"] for e in b.room_events(r)] == ["once", "marker"]
    assert b.room_events(r)[0]["clientEventId"] == "evt-1"
    # application events too: the handler's first answer comes back
    assert await a.emit("sum", [1, 1], client_event_id="rpc-1") == 2
    assert await a.emit("sum", [5, 5], client_event_id="rpc-1") == 2


async def test_resume_replays_missed_events_once_in_order(clients, transport):
    r = room()
    sub, pub = clients(transport), clients("sse-post" if transport != "sse-post" else "socketio-websocket")
    await sub.connect("/chat"), await pub.connect("/chat")
    await sub.join(r), await pub.join(r)
    for i in range(3):
        await pub.publish(r, i)
    await sub.wait_room_events(r, 3)
    sid = sub.sid
    await sub.drop()
    for i in range(3, 8):
        await pub.publish(r, i)
    info = await sub.connect("/chat", resume=True)
    assert info["sid"] == sid and r in info["rooms"]
    await sub.until(lambda: bool(sub.control("recovery")), what="recovery")
    [recovery] = sub.control("recovery")
    assert recovery["complete"] is True and recovery["gaps"] == []
    await pub.publish(r, 8)
    await sub.wait_room_events(r, 9)
    await sub.quiet()
    assert [e["data"] for e in sub.room_events(r)] == list(range(9))


async def test_resume_reports_gap_when_log_was_trimmed(clients, transport, server: ThreadedGateway):
    r = room()
    sub, pub = clients(transport), clients("sse-post")
    await sub.connect("/chat"), await pub.connect("/chat")
    await sub.join(r), await pub.join(r)
    await pub.publish(r, "seen")
    await sub.wait_room_events(r, 1)
    await sub.drop()
    total = server.settings.log_max_length + 5
    for i in range(total):
        await pub.publish(r, i)
    await sub.connect("/chat", resume=True)
    await sub.until(lambda: bool(sub.control("recovery")), what="recovery")
    [recovery] = sub.control("recovery")
    assert recovery["complete"] is False
    assert [g["room"] for g in recovery["gaps"]] == [r]
    # what the log still held arrives, in order: the last log_max_length events
    got = await sub.wait_room_events(r, 1 + server.settings.log_max_length)
    assert [e["data"] for e in got[1:]] == list(range(5, total))


async def test_resume_keeps_rooms_and_personal_room(clients, transport, server: ThreadedGateway):
    r = room()
    c = clients(transport)
    await c.connect("/chat")
    await c.join(r)
    sid = c.sid
    await c.drop()
    await server.arun(server.gateway.emit("/chat", "while-away", 1, to=sid))
    await c.connect("/chat", resume=True)
    await c.until(lambda: any(e["event"] == "while-away" for e in c.room_events()), what="personal replay")
    assert r in (await c.emit("whoami"))["rooms"]


async def test_resume_with_unknown_sid_is_refused(clients, transport):
    c = clients(transport)
    c.sid = "A" * 22
    c.offsets = {}
    c.key = "B" * 22
    c.last_event_id = "A" * 22 + ":" + "B" * 22 + ";"
    await expect_error("unknown_sid", c.connect("/chat", resume=True))


async def test_offset_from_the_future_is_refused_without_state_change(clients, transport):
    r = room()
    c = clients(transport)
    await c.connect("/chat")
    joined = await c.join(r)
    await c.drop()
    future = f"{int(time.time() * 1000) + 86_400_000}-0"  # a day ahead of any log
    c.offsets = {r: future}
    c.last_event_id = f"{c.sid}:{c.key};{r}={future}"
    await expect_error("offset_from_future", c.connect("/chat", resume=True))
    c.offsets = {r: joined["offset"]}
    c.last_event_id = f"{c.sid}:{c.key};{r}={joined['offset']}"
    info = await c.connect("/chat", resume=True)  # still recoverable: the refusal changed nothing
    assert r in info["rooms"]


async def test_wrong_typed_fields_are_refused(clients, transport):
    c = clients(transport)
    await c.connect("/chat")
    await expect_error("validation_error", c.request("join", {"room": 42}))
    await expect_error("validation_error", c.request("join", {}))
    await expect_error("validation_error", c.request("join", {"room": "has space"}))
    await expect_error("validation_error", c.request("publish", {"room": "x", "event": "open"}))
    await expect_error("validation_error", c.request("publish", {"room": "x", "includeSelf": "yes please"}))
    assert (await c.emit("whoami"))["rooms"] == []


@pytest.mark.parametrize("sender", TRANSPORTS)
async def test_cross_transport_same_envelope(clients, transport, sender):
    r = room()
    a, b = clients(sender), clients(transport)
    await a.connect("/chat"), await b.connect("/chat")
    await a.join(r), await b.join(r)
    ack = await a.publish(r, {"n": 1}, event="chat", clientEventId="x-1")
    [got] = await b.wait_room_events(r, 1)
    assert set(got) == {"event", "data", "room", "offset", "sender", "clientEventId", "ts"}
    assert got["event"] == "chat" and got["data"] == {"n": 1} and got["room"] == r
    assert got["offset"] == ack["offset"] and got["sender"] == a.sid and got["clientEventId"] == "x-1"
    assert isinstance(got["ts"], int)


async def test_resume_replays_own_events_only_if_asked(clients, transport):
    r = room()
    a, b = clients(transport), clients("sse-post")
    await a.connect("/chat"), await b.connect("/chat")
    await a.join(r), await b.join(r)
    await a.drop()
    await b.publish(r, "from b")
    # a publishes while away (SSE + POST can; the session outlives the stream)
    c = clients("sse-post")
    c.sid, c.key = a.sid, a.key  # the owner, from another connection: it holds the key
    if transport == "sse-post":
        await c.publish(r, "mine, quiet")
        await c.publish(r, "mine, echoed", includeSelf=True)
    await a.connect("/chat", resume=True)
    await a.until(lambda: bool(a.control("recovery")), what="recovery")
    await b.publish(r, "after")
    await a.until(lambda: any(e["data"] == "after" for e in a.room_events(r)), what="live")
    expected = ["from b", "mine, echoed", "after"] if transport == "sse-post" else ["from b", "after"]
    assert [e["data"] for e in a.room_events(r)] == expected
