"""The blocking client: under gevent's monkey-patching (how Locust runs it) in a subprocess,
and on plain threads against the session key, ``replaced`` and ``token_expired``."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
import time
import uuid

import pytest

from rtclient import Closing, Opened, RoomEvent, SessionEnded
from rtclient.blocking import BlockingClient

from .drivers import make_driver
from .servers import ThreadedGateway, timeout

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("transport", ["sse", "websocket", "polling"])
async def test_blocking_client_resumes_under_gevent(server: ThreadedGateway, transport: str):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.gevent_check", server.url, transport,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout(60))
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["ok"], result
    assert result["got"] == list(range(20))  # every event once, in order, across the drop
    assert result["acked"] == 20 and result["reconnects"] >= 1 and result["sum"] == 3
    if transport != "sse":
        assert result["transport"] == transport


# -- threads (no gevent): the session key, ``replaced`` and ``token_expired`` --------------

TRANSPORTS = ["sse", "websocket", "polling"]
SECRET = "rtclient-test-secret-0123456789-abcdef"  # HS256: 32+ characters


def mint(lifetime: float, sub: str) -> str:
    import jwt

    return jwt.encode({"sub": sub, "exp": int(time.time() + lifetime)}, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def jwt_server():
    gw = ThreadedGateway(jwt_secret=SECRET, ping_interval=1.0, ping_timeout=1.0, recovery_window=30.0).start()
    yield gw
    gw.stop()


class Inbox:
    """``on_event`` for a ``BlockingClient``: its events, awaitable from the test's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()

    def __call__(self, event) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    async def next(self, predicate, wait: float = 10):
        async def look():
            while True:
                event = await self.queue.get()
                if predicate(event):
                    return event
        return await asyncio.wait_for(look(), timeout(wait))


def blocking(url: str, transport: str, inbox: Inbox, **options) -> BlockingClient:
    client = BlockingClient(url, "/chat", transport=transport, on_event=inbox, request_timeout=10, **options)
    client.backoff.base = 0.05
    return client


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_blocking_client_resumes_with_its_key_then_stops_when_replaced(server: ThreadedGateway, transport: str):
    room = f"bx-{uuid.uuid4().hex[:8]}"
    inbox = Inbox()
    client = blocking(server.url, transport, inbox)
    await asyncio.to_thread(client.connect)
    await asyncio.to_thread(client.join, room)
    sid, key = client.sid, client.state.key
    assert key and key != sid
    await asyncio.to_thread(client.drop)
    opened = await inbox.next(lambda e: isinstance(e, Opened) and e.resumed)
    assert client.sid == sid and client.state.key == key and room in opened.rooms
    # A request answered: the reconnect is complete (``open`` reaches on_event a bit before).
    assert await asyncio.to_thread(client.emit, "echo", "resumed") == "resumed"
    # A request waiting for the connection, as one does while the client reconnects.
    client._connected.clear()
    pending = asyncio.ensure_future(asyncio.to_thread(client.publish, room, "never sent"))
    thief = make_driver("sse-post" if transport == "sse" else f"socketio-{transport}", server.url)
    if transport == "sse":
        thief.last_event_id = client.state.cursor  # the cursor the client built: sid:key;rooms
    else:
        thief.sid, thief.key = sid, key
    await thief.connect("/chat", resume=True)
    try:
        assert thief.sid == sid
        closing = await inbox.next(lambda e: isinstance(e, Closing))
        assert closing == Closing("close", "replaced", False)
        with pytest.raises(SessionEnded) as err:
            await asyncio.wait_for(pending, timeout(5))
        assert err.value.reason == "replaced"
        with pytest.raises(SessionEnded):
            await asyncio.to_thread(client.join, "anything")
        supervisor = client._supervisor
        assert supervisor is not None
        await asyncio.to_thread(supervisor.join, timeout(5))
        assert not supervisor.is_alive()  # no reconnect loop left
        assert client.state.stats.reconnects == 1  # the resume after the drop, nothing since
        await asyncio.to_thread(client.close)  # says nothing: the session is the thief's now
        assert (await thief.publish(room, "mine"))["offset"]
        assert server.session_state(sid) == "connected" and thief.control("close") == []
    finally:
        await thief.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_blocking_client_asks_the_token_callback_again_after_token_expired(jwt_server, transport: str):
    room = f"bt-{uuid.uuid4().hex[:8]}"
    issued: list[str] = []

    def token() -> str:
        issued.append(mint(2 if not issued else 60, f"ada-blocking-{transport}"))
        return issued[-1]

    inbox = Inbox()
    client = blocking(jwt_server.url, transport, inbox, token=token)
    pub = blocking(jwt_server.url, "sse", Inbox())  # anonymous
    await asyncio.to_thread(client.connect)
    await asyncio.to_thread(pub.connect)
    await asyncio.to_thread(client.join, room)
    await asyncio.to_thread(pub.join, room)
    sid, key = client.sid, client.state.key
    closing = await inbox.next(lambda e: isinstance(e, Closing))
    assert closing == Closing("close", "token_expired", True)
    opened = await inbox.next(lambda e: isinstance(e, Opened))
    assert opened.resumed and client.sid == sid and client.state.key == key
    assert len(issued) == 2 and client.ended is None
    await asyncio.to_thread(pub.publish, room, "after")
    event = await inbox.next(lambda e: isinstance(e, RoomEvent))
    assert event.data == "after"
    me = await asyncio.to_thread(client.emit, "whoami")
    assert (me["sid"], me["user"], me["rooms"]) == (sid, f"ada-blocking-{transport}", [room])
    await asyncio.to_thread(client.close)
    await asyncio.to_thread(pub.close)
