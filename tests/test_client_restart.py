"""The gateway process is killed and restarted: mid-burst, the clients lose nothing,
duplicate nothing, and keep the order (on Redis, so the log outlives the process); on the
memory broker, which forgets every session, a client whose first start over fails — refused,
or opened and then cut under its rejoin — starts over (or resumes) again and is then really in
the rooms its application had joined (the last case failed on the old client: measured
against it, the session stayed in no room)."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

import httpx
import pytest

from gateway.core.sessions import Session
from gateway.transports.socketio_server import SioChannel, SocketIOTransport
from rtclient import Gap, RoomEvent, SocketIOClient, SseClient
from rtclient.blocking import BlockingClient
from rtclient.protocol import ClientEvent

from .servers import REDIS_URL, SubprocessGateway, ThreadedGateway, free_port, timeout, wait_state


def make(kind: str, url: str):
    client = SseClient(url, "/chat", request_timeout=30) if kind == "sse" else SocketIOClient(
        url, "/chat", transports=[kind.split("-")[1]], request_timeout=30)
    client.backoff.base = 0.05
    return client


@pytest.mark.parametrize("kind", ["sse", "socketio-websocket", "socketio-polling"])
async def test_kill_and_restart_mid_burst(kind: str, redis_prefix: str):
    port = free_port()
    env = {"GATEWAY_BROKER": REDIS_URL, "GATEWAY_REDIS_PREFIX": f"{redis_prefix}-{uuid.uuid4().hex[:6]}",
           "GATEWAY_PING_INTERVAL": "1", "GATEWAY_PING_TIMEOUT": "1"}
    node = SubprocessGateway(port, env).start()
    sub, pub = make(kind, node.url), make(kind, node.url)
    received: list[RoomEvent] = []
    done = asyncio.Event()

    def on_event(event: RoomEvent) -> None:
        received.append(event)
        if len(received) >= 50:
            done.set()

    sub.on("event", on_event)
    try:
        for c in (sub, pub):
            await c.connect()
            await c.join("burst")
        sids = (sub.sid, pub.sid)

        async def burst() -> list[dict]:
            return [await pub.publish("burst", i) for i in range(50)]

        publishing = asyncio.create_task(burst())
        await wait_state(lambda: len(received) >= 20, 30, "the burst did not start")
        node.kill()  # SIGKILL: no goodbye, in the middle of the burst
        node = SubprocessGateway(port, env).start()
        acks = await asyncio.wait_for(publishing, timeout(60))
        await asyncio.wait_for(done.wait(), timeout(30))
        await asyncio.sleep(0.2)  # a late duplicate would show up here
        data = [e.data for e in received]
        print(f"\n{kind}: sent {len(acks)}, received {len(received)}, "
              f"duplicates dropped {sub.state.stats.duplicates}, gaps {sub.state.stats.gaps}, "
              f"reconnects sub={sub.state.stats.reconnects} pub={pub.state.stats.reconnects}")
        assert data == list(range(50))  # nothing lost, nothing duplicated, in order
        assert len({a["offset"] for a in acks}) == 50  # each publish logged once
        assert (sub.sid, pub.sid) == sids and sub.state.stats.gaps == 0
        assert sub.state.stats.reconnects >= 1 and pub.state.stats.reconnects >= 1
    finally:
        for c in (sub, pub):
            await c.close()
        node.kill()


# A new session every 2 s from one address, 3 at once: the test drains it so that the
# client's first start over is refused (rate_limited), and the next one, after its
# retryAfter, is let in. Memory broker: a restarted gateway knows no session.
LIMITED = {"GATEWAY_ADDRESS_SESSION_RATE": "0.5", "GATEWAY_ADDRESS_SESSION_BURST": "3",
           "GATEWAY_PING_INTERVAL": "1", "GATEWAY_PING_TIMEOUT": "1"}


class Restarted:
    """One client of either driver, whose connection attempts wait at a gate (its token
    callback, asked before every attempt) while the test restarts the gateway."""

    def __init__(self, driver: str, transport: str, url: str, namespace: str = "/chat") -> None:
        self.events: list[ClientEvent] = []
        self.gate = threading.Event()
        self.gate.set()
        self.attempts = 0
        self.blocking = driver == "blocking"
        self.client: Any
        if self.blocking:
            self.client = BlockingClient(url, namespace, transport=transport, on_event=self.events.append,
                                         token=self._token, request_timeout=30)
        elif transport == "sse":
            self.client = SseClient(url, namespace, token=self._atoken, request_timeout=30)
        else:
            self.client = SocketIOClient(url, namespace, transports=[transport], token=self._atoken, request_timeout=30)
        if not self.blocking:
            for kind in ("event", "gap", "open"):
                self.client.on(kind, self.events.append)
        self.client.backoff.base, self.client.backoff.cap = 0.05, 0.5

    def _token(self) -> str | None:
        self.attempts += 1
        assert self.gate.wait(timeout(30)), "the gate stayed closed"
        return None

    async def _atoken(self) -> str | None:
        return await asyncio.to_thread(self._token)

    async def call(self, method: str, *args: Any) -> Any:
        fn = getattr(self.client, method)
        return await asyncio.to_thread(fn, *args) if self.blocking else await fn(*args)


async def drain_new_sessions(url: str) -> float:
    """Open new sessions until the gateway refuses one; its retryAfter."""
    async with httpx.AsyncClient(base_url=url, timeout=timeout(10)) as http:
        for _ in range(10):
            async with http.stream("GET", "/sse/connect", params={"namespace": "/chat"}) as response:
                if response.status_code == 429:
                    return float((await response.aread() and response.json())["retryAfter"])
                assert response.status_code == 200
    raise AssertionError("the gateway never refused a new session")


@pytest.mark.parametrize(("driver", "transport"), [
    ("aio", "sse"), ("aio", "websocket"), ("blocking", "sse"), ("blocking", "websocket"),
])
async def test_a_refused_start_over_then_a_new_session_rejoins_the_rooms(driver: str, transport: str, caplog):
    caplog.set_level(logging.INFO, logger="rtclient")
    port = free_port()
    node = SubprocessGateway(port, LIMITED).start()
    sub = Restarted(driver, transport, node.url)
    pub = None
    try:
        await sub.call("connect")
        await sub.call("join", "lobby")
        await sub.call("join", "gone")
        await sub.call("leave", "gone")  # asked for, then left: not rejoined
        old_sid = sub.client.sid
        sub.gate.clear()  # every attempt from now on waits
        node.kill()
        node = SubprocessGateway(port, LIMITED).start()  # knows no session: the resume gets unknown_sid
        waited = await drain_new_sessions(node.url)
        assert waited > 0.5
        tried = sub.attempts
        sub.gate.set()  # resume (unknown_sid), start over (rate_limited), start over again (in)
        await wait_state(lambda: sub.client.sid not in (None, old_sid) and "lobby" in sub.client.state.rooms,
                         30, "the client did not start over and rejoin")
        assert any("starting over failed" in r.getMessage() and "rate_limited" in r.getMessage()
                   for r in caplog.records), "the first start over was not refused"
        assert sub.attempts >= tried + 2
        gaps = [e for e in sub.events if isinstance(e, Gap)]
        assert [(g.room, g.reason) for g in gaps] == [("lobby", "session_lost")]
        assert sub.client.state.rooms == {"lobby"}  # "gone" was left: not joined again
        # The gateway really holds it in the room: another client's publish reaches it.
        pub = SseClient(node.url, "/chat", request_timeout=30)
        await pub.connect()  # rate_limited is retried after its retryAfter
        await pub.join("lobby")
        await pub.publish("lobby", "after the restart")
        await wait_state(lambda: any(isinstance(e, RoomEvent) and e.data == "after the restart" for e in sub.events),
                         10, "the publish did not reach the client")
    finally:
        sub.gate.set()
        await sub.call("close")
        if pub is not None:
            await pub.close()
        node.kill()


@pytest.mark.parametrize("driver", ["aio", "blocking"])
async def test_a_start_over_cut_before_its_rejoin_still_rejoins_the_rooms(driver: str):
    """The other way a start over fails half-way: the new session opens, then its connection
    is cut under the rejoin. The client resumes that new session and must still join the
    rooms its application asked for (the old supervisor resumed it and never rejoined)."""
    gw = ThreadedGateway(ping_interval=1, ping_timeout=1).start()
    transport = gw.gateway.transports["socketio"]
    assert isinstance(transport, SocketIOTransport)
    armed = threading.Event()
    cut: list[str] = []

    async def cut_the_first_rejoin(session: Session, room: str) -> bool:
        if room == "lobby" and armed.is_set():
            armed.clear()
            channel = session.channel
            assert isinstance(channel, SioChannel)
            cut.append(session.sid)
            transport.cut(channel.sio_sid, channel.namespace, "test_cut")
            await asyncio.sleep(0.5)  # the socket is gone before any answer: the client never gets one
            raise RuntimeError("the connection was cut under the rejoin")
        return True

    namespace = gw.gateway.namespaces["/"]
    namespace.authorize_join(cut_the_first_rejoin)
    sub = Restarted(driver, "websocket", gw.url, namespace="/")
    pub = SseClient(gw.url, "/", request_timeout=30)
    try:
        await sub.call("connect")
        await sub.call("join", "lobby")
        old_sid = sub.client.sid
        armed.set()

        async def forget() -> None:  # the gateway forgets the session: the resume gets unknown_sid
            gw.gateway.close(gw.gateway.sessions[old_sid], "test: forgotten")

        gw.run(forget())
        await wait_state(lambda: bool(cut), 30, "the new session's rejoin never came")
        new_sid = cut[0]
        assert new_sid != old_sid

        def in_lobby() -> bool:
            session = gw.gateway.sessions.get(new_sid)
            return session is not None and "lobby" in session.rooms and sub.client.sid == new_sid

        await wait_state(in_lobby, 30, "the resumed new session was never joined to lobby again")
        await pub.connect()
        await pub.join("lobby")
        await pub.publish("lobby", "after the cut")
        await wait_state(lambda: any(isinstance(e, RoomEvent) and e.data == "after the cut" for e in sub.events),
                         10, "the publish did not reach the client")
    finally:
        await sub.call("close")
        await pub.close()
        gw.stop()
