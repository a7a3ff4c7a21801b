"""Socket.IO connection-state recovery with the unmodified official socket.io-client 4.8
(default options), under Node and in Chromium: its engine is cut mid-burst, it reconnects
by itself with ``{pid, offset}`` and gets its session back (``socket.recovered``), on the
memory and the Redis broker and on another node behind nginx; what it cannot get back
makes a new session, said so."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import socketio

from gateway import app as gateway_app
from gateway.core.hub import Gateway
from gateway.core.sessions import Session
from tests import servers

from .servers import REDIS_URL, NginxProcess, SubprocessGateway, ThreadedGateway, node_outcome, timeout

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNNER = ROOT / "tests" / "js" / "sio_recovery.mjs"
SCENARIO = ROOT / "tests" / "js" / "sio_recovery_scenario.js"
MARK = re.compile(r"^r1=[0-9]+-[0-9]+$")
TOTAL = 60
# The receiver is cut when it has 10 events; 10..24 are published around the cut, 25.. after it
# (fewer than the session-wide test server's log_max_length of 20 are missed).
CUT = {"room": "r1", "total": TOTAL, "cutAfter": 10, "resumeAt": 25, "mode": "cut"}

pytestmark = pytest.mark.node
if shutil.which("node") is None or not (ROOT / "node_modules" / "socket.io-client").exists():
    pytestmark = [pytest.mark.node, pytest.mark.skip(reason="needs node and `npm ci` (make setup does both)")]


async def official_client(url: str, namespace: str = "/chat", **config: Any) -> dict[str, Any]:
    """Run the recovery scenario with the official client under Node; what the receiver saw."""
    node = await asyncio.create_subprocess_exec(
        "node", str(RUNNER), json.dumps({**CUT, "url": url, "namespace": namespace, **config}), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(ROOT / "node_modules")},
    )
    return await node_outcome(node)


def assert_recovered(out: dict[str, Any]) -> None:
    first, second = out["connects"]
    assert not first["recovered"] and second["recovered"] is True, out["connects"]
    # socket.id is the session's public id (the open frame's sid, the sender others see), kept
    assert first["id"] == second["id"] == out["openSids"][0] == out["openSids"][1]
    assert out["data"] == [*range(TOTAL), "end"]  # every event once, in order
    assert all(MARK.match(mark) for mark in out["marks"]) and set(out["argCounts"]) == {2}
    [report] = out["recoveries"]
    assert report["recovered"] and report["complete"] and report["replayed"] > 0, report


async def test_recovers_mid_burst_memory_broker(server: ThreadedGateway) -> None:
    assert_recovered(await official_client(server.url))


@pytest.fixture
def redis_gateway(redis_prefix: str) -> Iterator[ThreadedGateway]:
    gw = ThreadedGateway(broker=REDIS_URL, redis_prefix=f"{redis_prefix}-{uuid.uuid4().hex[:6]}").start()
    yield gw
    gw.stop()


async def test_recovers_mid_burst_redis_broker(redis_gateway: ThreadedGateway) -> None:
    assert_recovered(await official_client(redis_gateway.url))


@pytest.mark.skipif(shutil.which("nginx") is None and not pathlib.Path("/usr/sbin/nginx").exists(),
                    reason="needs nginx (make test installs it)")
async def test_recovers_on_another_node_behind_nginx(tmp_path: pathlib.Path, redis_prefix: str) -> None:
    """Two nodes on Redis behind the shipped multi-node nginx configuration: the client starts on
    the node nginx does not send it to, and recovers through nginx, on the other node; the
    positions come from the node that wrote to its connection (a routed command)."""
    prefix = f"{redis_prefix}-{uuid.uuid4().hex[:6]}"
    env = {"GATEWAY_BROKER": REDIS_URL, "GATEWAY_REDIS_PREFIX": prefix}
    nodes = [SubprocessGateway(env=env).start() for _ in range(2)]
    proxy = NginxProcess([n.port for n in nodes], tmp_path, "multi-node")
    try:
        picked = await node_behind(proxy.url, nodes)
        other = nodes[1 - picked]
        out = await official_client(other.url, reconnectUrl=proxy.url, publisherUrl=proxy.url)
        assert_recovered(out)
        async with httpx.AsyncClient() as http:
            resumed = [_metric((await http.get(f"{n.url}/metrics")).text, "gateway_connects_total", 'resumed="yes"')
                       for n in nodes]
        assert resumed[picked] == 1 and resumed[1 - picked] == 0  # recovered on the other node
    finally:
        proxy.stop()
        for node in nodes:
            node.kill()


async def node_behind(url: str, nodes: list[SubprocessGateway]) -> int:
    """Which node nginx (ip_hash) sends this host's Socket.IO connections to."""
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, namespaces=["/chat"], wait_timeout=timeout(10))
    try:
        async with httpx.AsyncClient() as http:
            counts = [_metric((await http.get(f"{n.url}/metrics")).text, "gateway_sessions", 'state="connected"')
                      for n in nodes]
    finally:
        await client.disconnect()
    assert sorted(counts) == [0, 1], counts
    return counts.index(1)


def _metric(text: str, name: str, label: str) -> int:
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") and label in line))


async def test_gap_the_log_cannot_fill_is_a_new_session() -> None:
    """The log holds 5 events; 25 are published while the client is away: not recovered (a new
    id, a new pid), and the new session's recovery frame names the room with the gap."""
    gw = ThreadedGateway(log_max_length=5).start()
    try:
        out = await official_client(gw.url, total=30, cutAfter=3, resumeAt=5, mode="gap")
        first, second = out["connects"]
        assert second["recovered"] is False and second["pid"] and second["id"] != first["id"]
        assert out["openSids"] == [first["id"], second["id"]]
        [report] = out["recoveries"]
        assert report["recovered"] is False and not report["complete"]
        assert [gap["room"] for gap in report["gaps"]] == ["r1"]
        # the old session ended with it: its client let go of it
        assert await gw.arun(_state(gw.gateway, first["id"])) is None
    finally:
        gw.stop()


async def _state(gateway: Gateway, sid: str) -> str | None:
    session = gateway.sessions.get(sid)
    return session.state.value if session is not None else None


async def test_wrong_pid_is_a_new_session_and_leaks_nothing(server: ThreadedGateway) -> None:
    """A pid that is another session's public id (all a room shows): a new session, no error,
    and the other session (the publisher here) carries on untouched."""
    out = await official_client(server.url, total=6, cutAfter=3, resumeAt=6, mode="wrongpid")
    first, second = out["connects"]
    assert second["recovered"] is False and second["id"] not in (first["id"], out["publisher"]["idBefore"])
    assert out["recoveries"] == []  # nothing to say about a session it does not hold
    # still connected, same id, and its publish after the attempt went through (the script checks its ack)
    assert out["publisher"]["connected"] and out["publisher"]["idAfter"] == out["publisher"]["idBefore"]


@pytest.fixture
def declared(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ThreadedGateway, dict[str, list[str]]]]:
    """The demo plus three namespaces: recovery with middleware, recovery skipping it, no recovery."""
    calls: dict[str, list[str]] = {"/guarded": [], "/skipping": [], "/plain": []}

    def declare(gateway: Gateway) -> None:
        for name, options in (("/guarded", {"recovery": True}), ("/plain", {"recovery": False}),
                              ("/skipping", {"recovery": True, "recovery_skips_middleware": True})):
            ns = gateway.namespace(name, anonymous=True, **options)

            async def count(session: Session, auth: dict[str, Any], name: str = name) -> None:
                calls[name].append(session.sid)
                session.claims["seen"] = len(calls[name])

            ns.use(count)

    monkeypatch.setattr(servers, "create_app", lambda settings, demo: gateway_app.create_app(settings, declare, demo=demo))
    gw = ThreadedGateway().start()
    yield gw, calls
    gw.stop()


async def test_middleware_runs_again_on_recovery_unless_skipped(declared) -> None:
    gw, calls = declared
    guarded, skipping = await asyncio.gather(official_client(gw.url, "/guarded"), official_client(gw.url, "/skipping"))
    assert_recovered(guarded)
    assert_recovered(skipping)
    # the receiver and the publisher connect once each; the receiver's recovery runs it again
    assert len(calls["/guarded"]) == 3 and len(calls["/skipping"]) == 2


async def test_recovery_off_changes_nothing_on_the_wire(declared) -> None:
    gw, _ = declared
    out = await official_client(gw.url, "/plain", total=6, cutAfter=3, resumeAt=6, mode="wrongpid")
    first, second = out["connects"]
    assert not first["pid"] and not second["pid"] and not second["recovered"]
    assert first["id"] != out["openSids"][0]  # python-socketio's own sid, as before
    assert set(out["argCounts"]) == {1} and out["recoveries"] == []


async def test_python_socketio_client_sees_the_public_id(server: ThreadedGateway) -> None:
    """python-socketio's own client (no recovery) still works on a recovery namespace: its
    namespace sid is the gateway's public id, and room events' extra string is just ignored."""
    client = socketio.AsyncClient(reconnection=False)
    opened: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    got: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    client.on("open", lambda info: opened.done() or opened.set_result(info), namespace="/chat")
    client.on("note", lambda *args: got.put_nowait(args), namespace="/chat")
    await client.connect(server.url, namespaces=["/chat"], wait_timeout=timeout(10))
    try:
        info = await asyncio.wait_for(opened, timeout(10))
        assert client.get_sid("/chat") == info["sid"]
        assert (await client.call("join", {"room": "py-r"}, namespace="/chat"))["ok"]
        ack = await client.call("publish", {"room": "py-r", "event": "note", "data": 1, "includeSelf": True},
                                namespace="/chat")
        envelope, mark = await asyncio.wait_for(got.get(), timeout(10))
        assert envelope["data"] == 1 and mark == f"py-r={ack['result']['offset']}"
    finally:
        await client.disconnect()


CHROMIUM = pathlib.Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
async def test_chromium_official_client_recovers(server: ThreadedGateway) -> None:
    """The official client as the gateway serves it (/client/socket.io.esm.min.js), in Chromium."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = await browser.new_page()
            await page.goto(server.url + "/healthz")  # the gateway's own origin
            script = SCENARIO.read_text() + """
                ; (async (config) => {
                    const { io } = await import("/client/socket.io.esm.min.js");
                    return await recoveryScenario(io, config);
                })"""
            out = await page.evaluate(script, {**CUT, "url": server.url, "namespace": "/chat"})
        finally:
            await browser.close()
    assert_recovered(out)
