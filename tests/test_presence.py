"""Presence over every transport and both brokers: who is in a room, paged, the same on every
node; presence.join / presence.leave gathered under churn; a killed node's members out in time."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from rtclient import PresenceChange, SocketIOClient, SseClient
from rtclient.blocking import BlockingClient

from .drivers import Driver, expect_error, make_driver
from .servers import REDIS_URL, SubprocessGateway, ThreadedGateway, timeout, wait_state

_n = itertools.count()
PAGE = 2  # small pages, so that a few members already take several


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request: pytest.FixtureRequest, redis_prefix: str) -> Iterator[ThreadedGateway]:
    broker = "memory" if request.param == "memory" else REDIS_URL
    gw = ThreadedGateway(
        ping_interval=5.0, ping_timeout=5.0, recovery_window=30.0, broker=broker,
        redis_prefix=f"{redis_prefix}-presence", presence_page_size=PAGE, presence_event_window=0.3,
    )
    # The demo's "/" asks for nothing; here it lets anyone see a room's members where the join
    # hook would let them join (and refuses secret: rooms).
    root = gw.gateway.namespaces["/"]
    root.presence_unjoined = True
    root.authorize_join(lambda session, name: not name.startswith("secret:"))
    yield gw.start()
    gw.stop()


def room() -> str:
    return f"pr-{next(_n)}-{uuid.uuid4().hex[:6]}"


async def named(driver: Driver, name: str, namespace: str = "/chat") -> Driver:
    """Connect with a name, which the demo's /chat keeps in its ``name`` claim (and shows)."""
    if driver.transport == "sse-post":
        await driver.connect(namespace, params={"name": name})
    else:
        await driver.connect(namespace, {"name": name})
    return driver


def sids(page: dict[str, Any]) -> set[str]:
    return {member["sid"] for member in page["members"]}


async def everyone(driver: Driver, r: str) -> list[dict[str, Any]]:
    """Every page of ``r``'s presence, checked as it goes."""
    members: list[dict[str, Any]] = []
    cursor = None
    for _ in range(50):
        page = await driver.request("presence", {"room": r} if cursor is None else {"room": r, "cursor": cursor})
        assert page["room"] == r and len(page["members"]) <= PAGE
        members += page["members"]
        cursor = page["next"]
        if cursor is None:
            return members
        assert cursor == page["members"][-1]["sid"]
    raise AssertionError("presence pages never ended")


def announced(driver: Driver, r: str, event: str) -> list[dict[str, Any]]:
    """The ``presence.join`` or ``presence.leave`` envelopes ``driver`` got for ``r``."""
    return [d for e, d in driver.frames if e == event and isinstance(d, dict) and d.get("room") == r]


async def test_members_are_listed_with_the_claims_the_namespace_shows(clients, transport, server: ThreadedGateway):
    r = room()
    ada, bob = await named(clients(transport), "Ada"), await named(clients(transport), "Bob")
    await ada.join(r)
    await bob.join(r)
    page = await ada.request("presence", {"room": r})
    assert page["next"] is None
    assert sorted(page["members"], key=lambda m: m["sid"]) == page["members"]  # in sid order
    assert {m["sid"]: m for m in page["members"]} == {
        ada.sid: {"sid": ada.sid, "user": None, "claims": {"name": "Ada"}},
        bob.sid: {"sid": bob.sid, "user": None, "claims": {"name": "Bob"}},
    }
    assert await bob.request("presence", {"room": r}) == page  # the same answer for every member
    for key in (ada.key, bob.key):  # private keys are never shown
        assert key is not None and key.encode() not in orjson.dumps(page)
    await bob.leave(r)
    assert sids(await ada.request("presence", {"room": r})) == {ada.sid}
    await expect_error("not_joined", bob.request("presence", {"room": r}))  # no longer a member
    await ada.close()  # a session that ends leaves every room's presence
    await wait_state(lambda: server.run(server.gateway.presence("/chat", r))["members"] == [], 5, "ada is listed")


async def test_a_namespace_shows_no_claims_unless_it_says(clients, transport):
    r = room()
    c = await named(clients(transport), "Cy", "/")
    await c.join(r)
    assert (await c.request("presence", {"room": r}))["members"] == [{"sid": c.sid, "user": None, "claims": {}}]


async def test_non_members_and_bad_input_are_refused(clients, transport, server: ThreadedGateway):
    r = room()
    member, outsider = await named(clients(transport), "In"), await named(clients(transport), "Out")
    await member.join(r)
    error = await expect_error("not_joined", outsider.request("presence", {"room": r}))
    assert error.detail.get("room") == r
    for body in ({"room": "no spaces"}, {"room": r, "cursor": "bad cursor"}, {"room": r, "cursor": 7},
                 {"room": r, "limit": 5}, {}):
        await expect_error("validation_error", member.request("presence", body))
    if transport == "sse-post":  # the HTTP side: problem bodies with their status
        for body, status, code in (({"room": r}, 200, None), ({"room": "x y"}, 422, "validation_error")):
            answer = await member.post("presence", body)
            assert answer.status_code == status
            if code:
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert answer.json()["code"] == code
        answer = await outsider.post("presence", {"room": r})
        assert answer.status_code == 403 and answer.json()["code"] == "not_joined"


async def test_pages_cover_every_member_once(clients, transport):
    r = room()
    members = [await named(clients(transport), f"m{i}") for i in range(5)]
    for m in members:
        await m.join(r)
    listed = await everyone(members[0], r)
    assert [m["sid"] for m in listed] == sorted(m.sid for m in members if m.sid)  # 3 pages, no repeat
    last = max(m.sid for m in members if m.sid)
    assert await members[0].request("presence", {"room": r, "cursor": last}) == {"room": r, "members": [], "next": None}


async def test_the_join_hook_decides_for_non_members_where_the_namespace_allows(clients, transport):
    r = room()
    member, outsider = await named(clients(transport), "M", "/"), await named(clients(transport), "O", "/")
    await member.join(r)
    assert sids(await outsider.request("presence", {"room": r})) == {member.sid}
    await expect_error("forbidden_room", outsider.request("presence", {"room": f"secret:{r}"}))


async def test_join_and_leave_events_are_gathered_under_churn(clients, transport):
    r = room()
    watcher = await named(clients(transport), "Watcher")
    await watcher.join(r)
    await watcher.until(lambda: bool(announced(watcher, r, "presence.join")), what="its own join announced")
    crowd = [await named(clients(transport), f"c{i}") for i in range(6)]
    await asyncio.gather(*(c.join(r) for c in crowd))  # a burst
    expected = {c.sid for c in crowd}

    def members(event: str) -> set[str]:
        return {m["sid"] for e in announced(watcher, r, event)[(1 if event == "presence.join" else 0):]
                for m in e["data"]["members"]}

    await watcher.until(lambda: members("presence.join") >= expected, what="every join announced")
    joins = announced(watcher, r, "presence.join")[1:]
    assert len(joins) < len(crowd), joins  # gathered: fewer events than joins, all members listed
    assert all(e["offset"] is None and e["volatile"] and e["sender"] is None for e in joins)
    assert all(set(m) == {"sid", "user", "claims"} for e in joins for m in e["data"]["members"])
    await asyncio.gather(*(c.leave(r) for c in crowd))
    await watcher.until(lambda: members("presence.leave") >= expected, what="every leave announced")
    assert len(announced(watcher, r, "presence.leave")) < len(crowd)
    assert sids(await watcher.request("presence", {"room": r})) == {watcher.sid}


async def test_server_side_presence(clients, transport, server: ThreadedGateway):
    r = room()
    a = await named(clients(transport), "Srv")
    await a.join(r)
    page = await server.arun(server.gateway.presence("/chat", r))
    assert page == {"room": r, "members": [{"sid": a.sid, "user": None, "claims": {"name": "Srv"}}], "next": None}
    await expect_error("unknown_namespace", server.arun(server.gateway.presence("/nope", r)))
    await expect_error("validation_error", server.arun(server.gateway.presence("/chat", "a b")))


@pytest.mark.parametrize("kind", ["sse", "websocket", "polling"])
async def test_rtclient_presence_and_its_announcements(kind: str, server: ThreadedGateway):
    r = room()
    make = (lambda: SseClient(server.url, "/chat", auth={"name": "Py"})) if kind == "sse" else (
        lambda: SocketIOClient(server.url, "/chat", transports=[kind], auth={"name": "Py"}))
    a, b = make(), make()
    try:
        await a.connect()
        await a.join(r)
        await b.connect()
        await b.join(r)
        assert sids(await a.presence(r)) == {a.sid, b.sid}
        change = await _next_change(a, lambda e: b.sid in {m["sid"] for m in e.members})
        assert change.room == r and change.change == "join"
        blocking = BlockingClient(server.url, "/chat", transport="sse" if kind == "sse" else kind)
        await asyncio.to_thread(blocking.connect)
        try:
            await asyncio.to_thread(blocking.join, r)
            first = await asyncio.to_thread(blocking.presence, r)
            rest = await asyncio.to_thread(blocking.presence, r, cursor=first["next"])
            assert sids(first) | sids(rest) == {a.sid, b.sid, blocking.sid} and rest["next"] is None
        finally:
            await asyncio.to_thread(blocking.close)
        await b.leave(r)
        change = await _next_change(a, lambda e: e.change == "leave")
        assert {m["sid"] for m in change.members} >= {b.sid}
    finally:
        for c in (a, b):
            await c.close()


async def _next_change(client: SseClient | SocketIOClient, wanted: Any) -> PresenceChange:
    async def look() -> PresenceChange:
        while True:
            event = await client.next_event(timeout(10))
            if isinstance(event, PresenceChange) and wanted(event):
                return event
    return await asyncio.wait_for(look(), timeout(10))


# -- several nodes on Redis ------------------------------------------------------------

HEARTBEAT, EXPIRY = 0.3, 1.5
NODE = {"ping_interval": 5.0, "ping_timeout": 5.0, "presence_heartbeat": HEARTBEAT, "presence_expiry": EXPIRY,
        "presence_event_window": 0.1}


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return f"{redis_prefix}-nodes-{uuid.uuid4().hex[:6]}"


async def test_presence_is_the_same_on_every_node(prefix: str):
    nodes = [ThreadedGateway(broker=REDIS_URL, redis_prefix=prefix, **NODE).start() for _ in range(2)]
    x, y = make_driver("sse-post", nodes[0].url), make_driver("socketio-websocket", nodes[1].url)
    r = room()
    try:
        await named(x, "X")
        await named(y, "Y")
        await x.join(r)
        await y.join(r)  # acked once its presence is written: every node's answer lists it
        both = {x.sid, y.sid}
        assert sids(await x.request("presence", {"room": r})) == both
        assert sids(await y.request("presence", {"room": r})) == both
        assert sids(await nodes[1].arun(nodes[1].gateway.presence("/chat", r))) == both
        # The other node's member is announced here too.
        await x.until(lambda: any(y.sid in {m["sid"] for m in e["data"]["members"]}
                                  for e in announced(x, r, "presence.join")), what="y's join, from node 2")
        await y.leave(r)
        await x.until(lambda: any(y.sid in {m["sid"] for m in e["data"]["members"]}
                                  for e in announced(x, r, "presence.leave")), what="y's leave, from node 2")
        assert sids(await x.request("presence", {"room": r})) == {x.sid}
    finally:
        for d in (x, y):
            await d.close()
        for node in nodes:
            node.stop()


async def test_a_killed_node_takes_its_members_out_in_the_stated_time(prefix: str):
    env = {"GATEWAY_BROKER": REDIS_URL, "GATEWAY_REDIS_PREFIX": prefix, "GATEWAY_PING_INTERVAL": "5",
           "GATEWAY_PING_TIMEOUT": "5", "GATEWAY_PRESENCE_HEARTBEAT": str(HEARTBEAT),
           "GATEWAY_PRESENCE_EXPIRY": str(EXPIRY), "GATEWAY_PRESENCE_EVENT_WINDOW": "0.1"}
    doomed = SubprocessGateway(env=env).start()
    survivor = ThreadedGateway(broker=REDIS_URL, redis_prefix=prefix, **NODE).start()
    x, y = make_driver("sse-post", doomed.url), make_driver("socketio-websocket", survivor.url)
    r = room()
    try:
        await named(x, "X")
        await named(y, "Y")
        await x.join(r)
        await y.join(r)

        def listed() -> set[str]:
            return sids(survivor.run(survivor.gateway.presence("/chat", r)))

        assert listed() == {x.sid, y.sid}
        doomed.kill()
        killed = time.monotonic()
        # Out of every answer once its last heartbeat is EXPIRY old: at most EXPIRY after the kill.
        await wait_state(lambda: x.sid not in listed(), EXPIRY + 2, "the dead node's member is still listed")
        out = time.monotonic() - killed
        # ... and announced by the survivor's next heartbeat after that.
        await y.until(lambda: any(x.sid in {m["sid"] for m in e["data"]["members"]}
                                  for e in announced(y, r, "presence.leave")), EXPIRY + 2, "x's leave")
        announced_after = time.monotonic() - killed
        print(f"\nkilled node: out of presence after {out:.2f} s, leave announced after {announced_after:.2f} s "
              f"(heartbeat {HEARTBEAT} s, expiry {EXPIRY} s)")
        assert out <= timeout(EXPIRY + 0.5)
        assert announced_after <= timeout(EXPIRY + HEARTBEAT + 0.1 + 0.5)
        assert listed() == {y.sid}
    finally:
        for d in (x, y):
            with contextlib.suppress(Exception):
                await d.close()
        survivor.stop()
        if doomed.proc is not None and doomed.proc.poll() is None:
            doomed.kill()
