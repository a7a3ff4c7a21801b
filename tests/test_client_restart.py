"""The gateway process is killed and restarted mid-burst: the clients lose nothing,
duplicate nothing, and keep the order (on Redis, so the log outlives the process)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from rtclient import RoomEvent, SocketIOClient, SseClient

from .servers import REDIS_URL, SubprocessGateway, free_port, timeout


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
        while len(received) < 20:
            await asyncio.sleep(0.01)
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
