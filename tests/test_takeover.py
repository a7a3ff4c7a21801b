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


class HeldReplays:
    """Holds each read of ``ROOM``'s log, once armed, until the test lets it go, as a slow
    broker would: what the read found stays as it was while the test acts meanwhile."""

    def __init__(self, gw: ThreadedGateway) -> None:
        self.gw = gw
        self.armed = threading.Event()
        self.held: list[tuple[Any, asyncio.Event]] = []  # (the connection resuming, its release)
        self._holding = threading.Semaphore(0)
        gateway = gw.gateway
        real_replay = gateway.broker.replay

        async def held_replay(namespace: str, room: str, after: str) -> Replay:
            replay = await real_replay(namespace, room, after)
            if room == ROOM and self.armed.is_set():
                go = asyncio.Event()  # awaited on the gateway's loop, set from the test's
                resuming = [s.taking_over for s in gateway.sessions.values() if s.taking_over is not None]
                self.held.append((resuming[0] if len(resuming) == 1 else None, go))
                self._holding.release()
                await go.wait()
            return replay

        gateway.broker.replay = held_replay  # type: ignore[method-assign]

    async def next(self) -> tuple[Any, asyncio.Event]:
        """The next held read: (the connection it is for, its release)."""
        assert await asyncio.to_thread(self._holding.acquire, True, timeout(20)), "no resume read the log"
        return self.held[-1]

    def release(self, go: asyncio.Event) -> None:
        assert self.gw.loop is not None
        self.gw.loop.call_soon_threadsafe(go.set)

    def release_all(self) -> None:
        for _, go in self.held:
            self.release(go)


async def subscriber_and_publisher(gw: ThreadedGateway, connect_timeout: float) -> tuple[SocketIOClient, SseClient, list[Any]]:
    """A Socket.IO long-polling subscriber (quick to resume) and an SSE publisher in ``ROOM``,
    the first event received: (subscriber, publisher, the data it has received)."""
    sub = SocketIOClient(gw.url, "/chat", transports=["polling"], request_timeout=timeout(30),
                         connect_timeout=connect_timeout, backoff=Backoff(base=0.01, cap=0.05))
    pub = SseClient(gw.url, "/chat", request_timeout=timeout(30))
    got: list[Any] = []
    sub.on("event", lambda e: got.append(e.data) if isinstance(e, RoomEvent) else None)
    for client in (sub, pub):
        await client.connect()
        await client.join(ROOM)
    await pub.publish(ROOM, 0)
    await wait_state(lambda: got == [0], 10, "the first event did not arrive")
    return sub, pub, got


async def test_the_old_polling_connection_ending_mid_resume_loses_nothing() -> None:
    gw = ThreadedGateway(ping_interval=1, ping_timeout=1).start()
    gateway = gw.gateway
    transport = gateway.transports["socketio"]
    assert isinstance(transport, SocketIOTransport)
    # The resume's read of the room's log is held: the gateway's own ping timeout ends the old
    # connection meanwhile, and an event is logged after the read.
    holds = HeldReplays(gw)
    # It resumes at once (the gateway notices the old long-poll gone a second or more after the
    # drop, at its ping timeout), and does not give up on the held resume meanwhile.
    sub, pub, got = await subscriber_and_publisher(gw, timeout(20))
    try:
        sid = sub.sid
        old = gateway.sessions[sid].channel
        assert isinstance(old, SioChannel)

        holds.armed.set()
        await sub.drop()  # no goodbye: the gateway learns it from the ping timeout
        _, go = await holds.next()
        assert (old.namespace, old.sio_sid) in transport.channels, "the old connection ended before the resume read the log"
        await wait_state(lambda: (old.namespace, old.sio_sid) not in transport.channels, 10,
                         "the gateway never noticed the old polling connection was gone")
        await pub.publish(ROOM, 1)  # logged after the resume read the log
        holds.release(go)
        session = gateway.sessions[sid]
        await wait_state(lambda: session.live and session.channel is not old, 10, "the resume did not finish")
        await pub.publish(ROOM, 2)
        await wait_state(lambda: 2 in got, 10, "the resumed client received nothing")
        await asyncio.sleep(0.2)  # a late delivery would show up here
        assert got == [0, 1, 2]  # nothing lost, nothing twice, in order
        assert sub.sid == sid and sub.state.stats.gaps == 0
    finally:
        holds.release_all()
        await sub.close()
        await pub.close()
        gw.stop()


@pytest.mark.parametrize("first_done", ["older", "newer"])
async def test_two_overlapping_resumes_the_newest_wins_and_loses_nothing(first_done: str) -> None:
    # A client gives up a resume after its connect timeout while the gateway is still reading
    # the log for it, and resumes again: two take-overs of one session at once on one node.
    gw = ThreadedGateway().start()
    gateway = gw.gateway
    holds = HeldReplays(gw)  # the two resumes overlap for certain
    finished: list[Any] = []  # the connections whose take-over ended (either way), in order
    real_take_over = gateway._take_over_here

    async def tracked_take_over(session: Any, key: Any, credentials: Any, channel: Any, positions: Any,
                                *, exact: bool) -> Any:
        try:
            return await real_take_over(session, key, credentials, channel, positions, exact=exact)
        finally:
            finished.append(channel)

    gateway._take_over_here = tracked_take_over  # type: ignore[method-assign]
    sub, pub, got = await subscriber_and_publisher(gw, timeout(3))
    try:
        assert sub.sid is not None
        sid = sub.sid
        holds.armed.set()
        await sub.drop()
        older, go_older = await holds.next()
        # It gives up on the held resume after its connect timeout (no longer the test's to
        # wait on: the next attempt waits as long as it needs), and resumes again.
        sub.connect_timeout = timeout(30)
        newer, go_newer = await holds.next()
        assert older is not None and newer is not None and older is not newer
        await pub.publish(ROOM, 1)  # logged after both read the log: held, for the newer one
        session = gateway.sessions[sid]
        if first_done == "older":
            holds.release(go_older)
            await wait_state(lambda: older in finished, 10, "the older resume did not end")
            holds.release(go_newer)
        else:
            holds.release(go_newer)
            await wait_state(lambda: session.live and session.channel is newer, 10, "the newer resume did not finish")
            holds.release(go_older)
            await wait_state(lambda: older in finished, 10, "the older resume did not end")
        await wait_state(lambda: newer in finished, 10, "the newer resume did not end")
        await pub.publish(ROOM, 2)
        await wait_state(lambda: 2 in got, 10, f"the resumed client did not receive 2: {got}")
        await asyncio.sleep(0.2)  # a late delivery would show up here
        assert got == [0, 1, 2]  # nothing lost, nothing twice, in order
        assert session.live and session.channel is newer
        assert sub.ended is None and sub.sid == sid and sub.state.stats.gaps == 0
    finally:
        holds.release_all()
        await sub.close()
        await pub.close()
        gw.stop()
