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
