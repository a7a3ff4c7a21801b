"""Several gateway nodes on one Redis, behind nginx: no sticky sessions for SSE + POST."""

from __future__ import annotations

import asyncio
import collections
import pathlib
import shutil
import subprocess
import uuid
from collections.abc import Callable

import httpx
import orjson
import pytest
import socketio

from rtclient import Gap, RoomEvent, SocketIOClient, SseClient
from rtclient.protocol import SseFrame, SseParser

from .servers import REDIS_URL, NginxProcess, SubprocessGateway, free_port, timeout

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None and not pathlib.Path("/usr/sbin/nginx").exists(),
                                reason="needs nginx (make test installs it)")


def node_env(prefix: str, redis_url: str = REDIS_URL) -> dict[str, str]:
    return {"GATEWAY_BROKER": redis_url, "GATEWAY_REDIS_PREFIX": prefix, "GATEWAY_PING_INTERVAL": "1",
            "GATEWAY_PING_TIMEOUT": "1", "GATEWAY_API_TOKEN": "scaleout-api-secret"}


@pytest.fixture
def cluster(tmp_path: pathlib.Path, redis_prefix: str):
    prefix = f"{redis_prefix}-{uuid.uuid4().hex[:6]}"
    nodes = [SubprocessGateway(env=node_env(prefix)).start() for _ in range(2)]
    proxy = NginxProcess([n.port for n in nodes], tmp_path, "multi-node")
    yield nodes, proxy
    proxy.stop()
    for node in nodes:
        if node.proc and node.proc.poll() is None:
            node.kill()


class Inbox:
    """Collects a client's room events via its listener."""

    def __init__(self, client) -> None:
        self.events: list[RoomEvent] = []
        self.gaps: list[Gap] = []
        self.changed = asyncio.Event()
        client.on("event", self._event)
        client.on("gap", self.gaps.append)

    def _event(self, event: RoomEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def until(self, count: int, wait: float = 20) -> list[RoomEvent]:
        """Wait (bounded) until ``count`` events have come."""
        return await self.until_true(lambda events: len(events) >= count, wait)

    async def until_true(self, done: Callable[[list[RoomEvent]], bool], wait: float = 20) -> list[RoomEvent]:
        async def watch() -> None:
            while not done(self.events):
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(watch(), timeout(wait))
        return self.events


async def test_sse_posts_alternate_nodes_and_everyone_gets_everything_once(cluster):
    nodes, proxy = cluster
    room = "lobby"
    sse = SseClient(proxy.url, "/chat")  # stream and POSTs round-robin through nginx
    sio_b = SocketIOClient(nodes[1].url, "/chat", transports=["websocket"])
    sio_a = SocketIOClient(nodes[0].url, "/chat", transports=["polling"])
    clients = [sse, sio_b, sio_a]
    inboxes = [Inbox(c) for c in clients]
    for c in clients:
        await c.connect()
        await c.join(room)
    names = ("sse", "sio_b", "sio_a")
    acks: dict[str, list[str]] = collections.defaultdict(list)
    for i in range(10):
        for name, c in zip(names, clients, strict=True):
            acks[name].append((await c.publish(room, {"from": name, "i": i}))["offset"])
    # A last event after the checked ones, from the server side so that everyone gets it: a
    # room's events reach each member in offset order, so a duplicate of any checked event
    # would come before this one. Once it is in, nothing late can still be on its way.
    async with httpx.AsyncClient(base_url=nodes[0].url) as http:
        end = await http.post("/api/publish", json={"namespace": "/chat", "room": room, "event": "end"},
                              headers={"Authorization": "Bearer scaleout-api-secret"})
        assert end.status_code == 200, end.text
    for c, inbox, mine in zip(clients, inboxes, names, strict=True):
        got = await inbox.until_true(lambda events: any(e.event == "end" for e in events))
        # A repeated offset is dropped by the client and counted; anything else repeated
        # would be a 21st event before the end.
        assert c.state.stats.duplicates == 0, mine
        assert [e.event for e in got].index("end") == len(got) - 1 == 20, [e.data for e in got]
        others = [e for e in got[:-1] if e.data["from"] != mine]
        assert len(others) == 20
        for name in {"sse", "sio_b", "sio_a"} - {mine}:
            assert [e.data["i"] for e in others if e.data["from"] == name] == list(range(10))
            assert [e.offset for e in others if e.data["from"] == name] == acks[name]
    # The SSE client's POSTs really did land on both nodes.
    lines = (proxy.workdir / "access.log").read_text().splitlines()
    posts = {line.split()[-1] for line in lines if line.startswith("POST /sse/sessions/")}
    assert posts == {f"127.0.0.1:{n.port}" for n in nodes}
    for c in clients:
        await c.close()


async def test_node_killed_mid_burst_clients_resume_on_the_other(cluster):
    nodes, proxy = cluster
    room = "burst"
    subs = [SseClient(proxy.url, "/chat"), SocketIOClient(proxy.url, "/chat")]
    for s in subs:
        s.backoff.base = 0.05
    inboxes = [Inbox(s) for s in subs]
    for s in subs:
        await s.connect()
        await s.join(room)
    sids = [s.sid for s in subs]
    # Which node holds the SSE stream? Kill that one; publish from the other, directly.
    async with httpx.AsyncClient() as http:
        held = [int(_metric((await http.get(f"{n.url}/metrics")).text, 'gateway_connects_total{resumed="no",transport="sse"}')) for n in nodes]
    victim, survivor = (nodes[0], nodes[1]) if held[0] else (nodes[1], nodes[0])
    pub = SseClient(survivor.url, "/chat")
    await pub.connect()
    await pub.join(room)
    total = 60
    for i in range(total):
        await pub.publish(room, i)
        if i == 20:
            await asyncio.get_running_loop().run_in_executor(None, victim.kill)
    for s, inbox, sid in zip(subs, inboxes, sids, strict=True):
        got = await inbox.until(total, 30)
        assert [e.data for e in got] == list(range(total)), type(s).__name__  # once each, in order
        assert s.sid == sid and inbox.gaps == []
    assert subs[0].state.stats.reconnects >= 1
    for c in (*subs, pub):
        await c.close()


async def _next_frame(chunks, parser: SseParser, event: str) -> SseFrame:
    """The stream's next frame named ``event`` (others skipped)."""
    async def read() -> SseFrame:
        async for chunk in chunks:
            for frame in parser.feed(chunk):
                if frame.event == event:
                    return frame
        raise AssertionError(f"the stream ended before a {event!r} frame")
    return await asyncio.wait_for(read(), timeout(10))


async def test_a_session_moved_to_another_node_is_let_go_by_the_old_one(cluster):
    """What an ``auto`` client does behind a balancer: its session, on SSE at node A, resumed
    over WebSocket at node B while the SSE stream is still open. A lets go at once (its
    stream is told ``replaced``), and a request that still reaches A runs on B: nothing is
    done on a stale copy and lost."""
    (a, b), _ = cluster
    async with httpx.AsyncClient(base_url=a.url, timeout=timeout(10)) as http:
        async with http.stream("GET", "/sse/connect", params={"namespace": "/chat"}) as stream:
            chunks, parser = stream.aiter_bytes(), SseParser()
            opened = orjson.loads((await _next_frame(chunks, parser, "open")).data)
            sid, headers = opened["sid"], {"X-Session-Key": opened["key"]}
            joined = await http.post(f"/sse/sessions/{sid}/join", json={"room": "before"}, headers=headers)
            assert joined.status_code == 200, joined.text
            sio = socketio.AsyncClient(reconnection=False)
            got: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
            sio.on("*", lambda event, data, *_: got.put_nowait((event, data)), namespace="/chat")
            await sio.connect(b.url, namespaces=["/chat"], transports=["websocket"],
                              auth={"sid": sid, "key": opened["key"], "offsets": {}})
            try:
                closing = orjson.loads((await _next_frame(chunks, parser, "close")).data)
                assert closing == {"reason": "replaced", "reconnect": False}
                # The old connection's node sends the session's requests to its new node: a
                # join through A is B's, so a publish to that room reaches the WebSocket on B.
                joined = await http.post(f"/sse/sessions/{sid}/join", json={"room": "after"}, headers=headers)
                assert joined.status_code == 200, joined.text
                publisher = SseClient(a.url, "/chat")
                await publisher.connect()
                try:
                    await publisher.join("after")
                    await publisher.publish("after", {"n": 1})
                    while True:
                        event, data = await asyncio.wait_for(got.get(), timeout(10))
                        if event == "message":
                            break
                    assert isinstance(data, dict) and data["room"] == "after" and data["data"] == {"n": 1}
                finally:
                    await publisher.close()
            finally:
                await sio.disconnect()


async def test_server_side_publish_api_and_emitter(cluster):
    nodes, proxy = cluster
    sub = SseClient(proxy.url, "/chat")
    inbox = Inbox(sub)
    await sub.connect()
    await sub.join("news")
    async with httpx.AsyncClient(base_url=nodes[0].url) as http:
        denied = await http.post("/api/publish", json={"namespace": "/chat", "room": "news", "event": "x"})
        assert denied.status_code == 401 and denied.json()["code"] == "unauthorized"
        wrong = await http.post("/api/publish", json={"room": "news", "event": "x"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_token"
        ok = await http.post("/api/publish", json={"namespace": "/chat", "room": "news", "event": "headline", "data": 1},
                             headers={"Authorization": "Bearer scaleout-api-secret"})
        assert ok.status_code == 200, ok.text
    from gateway.brokers.emitter import Emitter

    emitter = Emitter(REDIS_URL, prefix=nodes[0].env["GATEWAY_REDIS_PREFIX"])
    offset = emitter.publish("/chat", "news", "headline", 2)
    emitter.close()
    got = await inbox.until(2)
    assert [e.data for e in got] == [1, 2] and got[1].offset == offset and got[0].sender is None
    await sub.close()


async def test_redis_restart_loses_nothing_acked(tmp_path: pathlib.Path, redis_prefix: str):
    port = free_port()
    redis_cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    redis_proc = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    node = None
    try:
        await _until_redis(port)
        node = SubprocessGateway(env=node_env(redis_prefix, url)).start()
        sub, pub = SseClient(node.url, "/chat"), SseClient(node.url, "/chat", request_timeout=60)
        sub.backoff.base = pub.backoff.base = 0.05
        inbox = Inbox(sub)
        recoveries = []
        sub.on("recovery", recoveries.append)
        for c in (sub, pub):
            await c.connect()
            await c.join("r")
        readiness: list[int] = []
        async with httpx.AsyncClient(base_url=node.url) as http:
            for i in range(40):
                await pub.publish("r", i)
                if i == 15:
                    redis_proc.kill()
                    redis_proc.wait(timeout(10))
                    readiness.append((await _readyz_until(http, 503)).status_code)
                    redis_proc = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
                    readiness.append((await _readyz_until(http, 200)).status_code)
        got = await inbox.until(40, 30)
        assert readiness == [503, 200]
        assert [e.data for e in got] == list(range(40))  # nothing acked was lost, nothing doubled
        assert inbox.gaps == [] and all(r.complete for r in recoveries)
        for c in (sub, pub):
            await c.close()
    finally:
        if node is not None:
            node.kill()
        redis_proc.kill()
        redis_proc.wait()


async def _until_redis(port: int) -> None:
    for _ in range(int(100 * timeout(1))):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError("redis did not start")


async def _readyz_until(http: httpx.AsyncClient, status: int) -> httpx.Response:
    for _ in range(int(200 * timeout(1))):
        response = await http.get("/readyz")
        if response.status_code == status:
            return response
        await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never answered {status}")


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0
