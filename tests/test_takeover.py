"""A resume that takes a session over from a connection the gateway still thinks is open.

A Socket.IO long-polling client that loses its connection comes back at once on a new one,
while the gateway notices the old one is gone only when its ping times out, a second or so
later: often while the resume is reading the session's replay. Events logged after that read
wait for the new connection in the session's backlog; the old connection's end must not throw
them away. (The chaos soak found it: a polling receiver missed one acknowledged event, no gap
reported, after a drop, and received the next ones.)
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from gateway.core.delivery_log import Replay
from gateway.transports.socketio_server import SioChannel, SocketIOTransport
from rtclient import Backoff, RoomEvent, SocketIOClient, SseClient

from .servers import ThreadedGateway, timeout, wait_state

ROOM = "takeover"


async def test_the_old_polling_connection_ending_mid_resume_loses_nothing() -> None:
    gw = ThreadedGateway(ping_interval=1, ping_timeout=1).start()
    gateway = gw.gateway
    transport = gateway.transports["socketio"]
    assert isinstance(transport, SocketIOTransport)
    # The resume's read of the room's log is held (as a slow broker would hold it) until the
    # test lets it go: the gateway's own ping timeout ends the old connection meanwhile, and an
    # event is logged after the read.
    armed, read = threading.Event(), threading.Event()
    go = asyncio.Event()  # awaited on the gateway's loop, set from this one

    def release() -> None:
        assert gw.loop is not None
        gw.loop.call_soon_threadsafe(go.set)

    real_replay = gateway.broker.replay

    async def held_replay(namespace: str, room: str, after: str) -> Replay:
        replay = await real_replay(namespace, room, after)
        if room == ROOM and armed.is_set():
            armed.clear()
            read.set()
            await go.wait()
        return replay

    gateway.broker.replay = held_replay  # type: ignore[method-assign]
    # It resumes at once (the gateway notices the old long-poll gone a second or more after the
    # drop, at its ping timeout), and does not give up on the held resume meanwhile.
    sub = SocketIOClient(gw.url, "/chat", transports=["polling"], request_timeout=timeout(30),
                         connect_timeout=timeout(20), backoff=Backoff(base=0.01, cap=0.05))
    pub = SseClient(gw.url, "/chat", request_timeout=timeout(30))
    got: list[Any] = []
    sub.on("event", lambda e: got.append(e.data) if isinstance(e, RoomEvent) else None)
    try:
        for client in (sub, pub):
            await client.connect()
            await client.join(ROOM)
        await pub.publish(ROOM, 0)
        await wait_state(lambda: got == [0], 10, "the first event did not arrive")
        sid = sub.sid
        old = gateway.sessions[sid].channel
        assert isinstance(old, SioChannel)

        armed.set()
        await sub.drop()  # no goodbye: the gateway learns it from the ping timeout
        await wait_state(read.is_set, 10, "the client did not resume")
        assert (old.namespace, old.sio_sid) in transport.channels, "the old connection ended before the resume read the log"
        await wait_state(lambda: (old.namespace, old.sio_sid) not in transport.channels, 10,
                         "the gateway never noticed the old polling connection was gone")
        await pub.publish(ROOM, 1)  # logged after the resume read the log
        release()
        session = gateway.sessions[sid]
        await wait_state(lambda: session.live and session.channel is not old, 10, "the resume did not finish")
        await pub.publish(ROOM, 2)
        await wait_state(lambda: 2 in got, 10, "the resumed client received nothing")
        await asyncio.sleep(0.2)  # a late delivery would show up here
        assert got == [0, 1, 2]  # nothing lost, nothing twice, in order
        assert sub.sid == sid and sub.state.stats.gaps == 0
    finally:
        release()
        await sub.close()
        await pub.close()
        gw.stop()


@pytest.mark.parametrize("first_done", ["older", "newer"])
async def test_two_overlapping_resumes_the_newest_wins_and_loses_nothing(first_done: str) -> None:
    # A client gives up a resume after its connect timeout while the gateway is still reading
    # the log for it, and resumes again: two take-overs of one session at once on one node.
    gw = ThreadedGateway().start()
    gateway = gw.gateway
    # Each resume's read of the room's log is held until the test lets it go, so the two
    # overlap for certain; ``held``: (the connection resuming, its release), in read order.
    held: list[tuple[Any, asyncio.Event]] = []
    holding = threading.Semaphore(0)
    finished: list[Any] = []  # the connections whose take-over ended (either way), in order
    armed = threading.Event()
    sid = ""

    def release(go: asyncio.Event) -> None:
        assert gw.loop is not None
        gw.loop.call_soon_threadsafe(go.set)

    real_replay = gateway.broker.replay

    async def held_replay(namespace: str, room: str, after: str) -> Replay:
        replay = await real_replay(namespace, room, after)
        if room == ROOM and armed.is_set():
            go = asyncio.Event()
            held.append((gateway.sessions[sid].taking_over, go))
            holding.release()
            await go.wait()
        return replay

    real_take_over = gateway._take_over_here

    async def tracked_take_over(session: Any, key: Any, credentials: Any, channel: Any, positions: Any,
                                *, exact: bool) -> Any:
        try:
            return await real_take_over(session, key, credentials, channel, positions, exact=exact)
        finally:
            finished.append(channel)

    gateway.broker.replay = held_replay  # type: ignore[method-assign]
    gateway._take_over_here = tracked_take_over  # type: ignore[method-assign]
    sub = SocketIOClient(gw.url, "/chat", transports=["polling"], request_timeout=timeout(30),
                         connect_timeout=timeout(3), backoff=Backoff(base=0.01, cap=0.05))
    pub = SseClient(gw.url, "/chat", request_timeout=timeout(30))
    got: list[Any] = []
    sub.on("event", lambda e: got.append(e.data) if isinstance(e, RoomEvent) else None)

    async def next_hold() -> tuple[Any, asyncio.Event]:
        assert await asyncio.to_thread(holding.acquire, True, timeout(20)), "no resume read the log"
        return held[-1]

    try:
        for client in (sub, pub):
            await client.connect()
            await client.join(ROOM)
        await pub.publish(ROOM, 0)
        await wait_state(lambda: got == [0], 10, "the first event did not arrive")
        assert sub.sid is not None
        sid = sub.sid
        armed.set()
        await sub.drop()
        older, go_older = await next_hold()
        # It gives up on the held resume after its connect timeout (no longer the test's to
        # wait on: the next attempt waits as long as it needs), and resumes again.
        sub.connect_timeout = timeout(30)
        newer, go_newer = await next_hold()
        assert older is not newer
        await pub.publish(ROOM, 1)  # logged after both read the log: held, for the newer one
        session = gateway.sessions[sid]
        if first_done == "older":
            release(go_older)
            await wait_state(lambda: older in finished, 10, "the older resume did not end")
            release(go_newer)
        else:
            release(go_newer)
            await wait_state(lambda: session.live and session.channel is newer, 10, "the newer resume did not finish")
            release(go_older)
            await wait_state(lambda: older in finished, 10, "the older resume did not end")
        await wait_state(lambda: newer in finished, 10, "the newer resume did not end")
        await pub.publish(ROOM, 2)
        await wait_state(lambda: 2 in got, 10, f"the resumed client did not receive 2: {got}")
        await asyncio.sleep(0.2)  # a late delivery would show up here
        assert got == [0, 1, 2]  # nothing lost, nothing twice, in order
        assert session.live and session.channel is newer
        assert sub.ended is None and sub.sid == sid and sub.state.stats.gaps == 0
    finally:
        for _, go in held:
            release(go)
        await sub.close()
        await pub.close()
        gw.stop()
