"""Session expiry, shutdown, payload limits and slow consumers, each on its own gateway."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import signal
import time

import pytest

from gateway.core.hub import Gateway
from gateway.settings import Settings
from gateway.transports.sse import SseChannel, SseTransport

from .drivers import TRANSPORTS, expect_error, make_driver
from .servers import SubprocessGateway, ThreadedGateway, timeout, wait_state


@pytest.fixture(scope="module")
def short_lived():
    gw = ThreadedGateway(ping_interval=0.5, ping_timeout=0.5, recovery_window=0.5).start()
    yield gw
    gw.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_expired_session_releases_rooms_and_says_so(short_lived: ThreadedGateway, transport: str):
    c = make_driver(transport, short_lived.url)
    await c.connect("/chat")
    await c.join("expiring")
    sid = c.sid
    await c.drop()
    gateway = short_lived.gateway
    await wait_state(lambda: sid not in gateway.sessions, 10)
    assert gateway.rooms.get("/chat", "expiring") is None
    await expect_error("session_expired", c.connect("/chat", resume=True))
    await c.close()


async def test_unknown_and_expired_sids_are_told_apart_over_http(short_lived: ThreadedGateway):
    c = make_driver("sse-post", short_lived.url)
    await c.connect("/chat")
    sid = c.sid
    await c.drop()
    await wait_state(lambda: sid not in short_lived.gateway.sessions, 10)
    r = await c.http.post(f"/sse/sessions/{sid}/join", json={"room": "r"}, headers=c.key_header())
    assert r.status_code == 410 and r.json()["code"] == "session_expired"
    # told only to whoever holds the key: to anyone else the sid is simply unknown (no oracle)
    for stranger in ({}, {"X-Session-Key": "A" * 22}):
        r = await c.http.post(f"/sse/sessions/{sid}/join", json={"room": "r"}, headers=stranger)
        assert r.status_code == 404 and r.json()["code"] == "unknown_sid"
    r = await c.http.post("/sse/sessions/never-was-a-session/join", json={"room": "r"})
    assert r.status_code == 404 and r.json()["code"] == "unknown_sid"
    await c.close()


async def test_socketio_payload_over_max_is_cut_by_the_library():
    gw = ThreadedGateway(max_payload=10_000).start()
    try:
        c = make_driver("socketio-websocket", gw.url)
        await c.connect("/chat")
        assert c.client is not None
        await c.client.emit("echo", "x" * 20_000, namespace="/chat")
        await c.until(lambda: any(e == "__disconnect__" for e, _ in c.frames), what="disconnect")
        session = gw.gateway.sessions[c.sid]
        await wait_state(lambda: session.state.value == "detached")
    finally:
        gw.stop()


@pytest.mark.parametrize("module", [False, True], ids=["uvicorn gateway.main:app", "python -m gateway"])
async def test_sigterm_sends_a_reconnect_hint_not_a_reset(module: bool):
    gw = SubprocessGateway(module=module).start()
    sse = make_driver("sse-post", gw.url)
    sio = make_driver("socketio-websocket", gw.url)
    try:
        await sse.connect("/chat"), await sio.connect("/chat")
        signalled = time.monotonic()
        stopped = asyncio.get_running_loop().run_in_executor(None, gw.terminate)
        await sse.until(lambda: bool(sse.control("close")), what="close frame")
        assert sse.control("close")[0] == {"reason": "shutdown", "reconnect": True}
        # uvicorn closes WebSockets with 1012 (service restart) as it starts shutting
        # down, often before the close frame gets out; either way a Socket.IO client
        # sees a transport loss, which it reconnects after, never "io server disconnect".
        await sio.until(lambda: bool(sio.control("__disconnect__")), what="disconnect")
        hinted = sio.control("close") == [{"reason": "shutdown", "reconnect": True}]
        assert hinted or sio.control("__disconnect__")[0] != "server disconnect"
        await sse.until(lambda: any(e == "__end__" for e, _ in sse.frames), what="stream end")
        # uvicorn re-raises the captured SIGTERM after its graceful shutdown
        assert await stopped in (0, -signal.SIGTERM)
        # Promptly: the streams ended at the signal, not at a graceful-shutdown timeout
        # (``python -m gateway``: 3 s; plain uvicorn: none, it would wait for ever).
        assert time.monotonic() - signalled < timeout(2.5)
    finally:
        await sse.http.aclose()
        if gw.proc.poll() is None:
            gw.kill()


def test_the_app_and_its_lifespan_leave_the_collector_alone():
    before = gc.get_threshold(), gc.get_freeze_count()
    gw = ThreadedGateway().start()  # create_app, and its lifespan's startup
    try:
        assert (gc.get_threshold(), gc.get_freeze_count()) == before
    finally:
        gw.stop()
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_python_m_gateway_tunes_the_collector():
    gw = SubprocessGateway(env={"GATEWAY_GC_THRESHOLD": "12345", "GATEWAY_LOG_LEVEL": "INFO"}, module=True).start()
    try:
        tuned = [line for line in gw.output if "garbage collector" in line]
        assert len(tuned) == 1
        match = re.search(r"threshold (\d+), (\d+) objects frozen", json.loads(tuned[0])["msg"])
        assert match and int(match.group(1)) == 12345
        assert int(match.group(2)) > 10_000  # the app, built before, is frozen with the modules
    finally:
        gw.terminate()


async def test_slow_sse_consumer_is_cut_and_counted():
    gateway = Gateway(Settings(session_queue_size=3))
    streams = SseTransport()
    gateway.add_transport(streams)
    gateway.namespace("/chat")
    await gateway.start()
    channel = SseChannel(gateway, streams)
    session = await gateway.connect("/chat", channel, {})
    channel.session = session
    gateway.activate(session)  # open: 1 frame queued
    for i in range(5):
        await gateway.emit("/chat", "flood", i, to=session.sid)
    assert channel.cut == "slow_consumer"
    assert session.state.value == "detached"  # recoverable: it resumes from the log
    dropped = gateway.metrics.dropped.labels("slow_consumer")._value.get()
    assert dropped == 1
    await gateway.stop()


async def test_a_long_replay_is_not_a_slow_consumer():
    gw = ThreadedGateway(session_queue_size=5, log_max_length=100).start()
    try:
        sub, pub = make_driver("sse-post", gw.url), make_driver("sse-post", gw.url)
        await sub.connect("/chat"), await pub.connect("/chat")
        await sub.join("long"), await pub.join("long")
        await sub.drop()
        for i in range(30):  # six times the queue bound
            await pub.publish("long", i)
        await sub.connect("/chat", resume=True)
        await sub.until(lambda: bool(sub.control("recovery")), what="recovery")
        assert sub.control("recovery")[0]["complete"] is True
        assert [e["data"] for e in sub.room_events("long")] == list(range(30))
        assert gw.gateway.sessions[sub.sid].state.value == "connected"
        await sub.close(), await pub.close()
    finally:
        gw.stop()


async def test_slow_socketio_consumer_is_cut_and_counted():
    from rtclient.aio import abandon

    gw = ThreadedGateway(session_queue_size=5).start()  # pings every 25 s: only the bound can cut it
    try:
        slow, pub = make_driver("socketio-polling", gw.url), make_driver("sse-post", gw.url)
        await slow.connect("/chat"), await pub.connect("/chat")
        await slow.join("flood"), await pub.join("flood")
        await abandon(slow.client)  # stops polling: its server-side queue only grows
        slow.client = None
        session = gw.gateway.sessions[slow.sid]
        for i in range(20):
            await pub.publish("flood", i)
        await wait_state(lambda: session.state.value == "detached")  # cut, and recoverable
        assert gw.gateway.metrics.dropped.labels("slow_consumer")._value.get() >= 1
        await pub.close()
    finally:
        gw.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_session_cannot_join_more_rooms_than_the_limit(transport):
    gw = ThreadedGateway(max_rooms_per_session=3).start()
    try:
        c = make_driver(transport, gw.url)
        await c.connect("/chat")
        for r in ("a", "b", "c"):
            await c.join(r)
        await c.join("b")  # already in: not one more
        await expect_error("too_many_rooms", c.join("d"))
        session = gw.gateway.sessions[c.sid]
        assert sorted(r for r in session.rooms if r not in (c.sid, "*")) == ["a", "b", "c"]  # refused: nothing changed
        await c.leave("a")
        await c.join("d")  # room for one again
        await c.close()
    finally:
        gw.stop()


async def test_a_full_socketio_outbox_cuts_its_recipients_who_resume_from_the_log():
    # Room for a resume (open, replay, recovery, a room change per room) but not for the burst.
    gw = ThreadedGateway(socketio_outbox_size=8).start()
    try:
        sub = make_driver("socketio-websocket", gw.url)
        await sub.connect("/chat")
        await sub.join("burst")

        async def burst() -> None:  # twenty broadcasts before the outbox's sender gets a turn
            for i in range(20):
                await gw.gateway.emit("/chat", "m", i, to="burst")

        gw.run(burst())
        assert gw.gateway.metrics.dropped.labels("socketio_outbox_full")._value.get() >= 1
        await sub.until(lambda: bool(sub.control("close")), what="the reconnect hint")
        assert sub.control("close")[-1] == {"reason": "socketio_outbox_full", "reconnect": True}
        await sub.until(lambda: any(e == "__disconnect__" for e, _ in sub.frames), what="the disconnect")
        await sub.connect("/chat", resume=True)  # what the hint asks for (rtclient does it by itself)
        await sub.until(lambda: len(sub.room_events("burst")) >= 20, what="twenty events, live or replayed")
        assert [e["data"] for e in sub.room_events("burst")] == list(range(20))  # once each, in order
        await sub.until(lambda: bool(sub.control("recovery")), what="a resume")
        assert gw.gateway.sessions[sub.sid].state.value == "connected"
        await sub.close()
    finally:
        gw.stop()
