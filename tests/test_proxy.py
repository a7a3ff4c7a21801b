"""The comparison's reverse proxy in front of a real gateway, one profile at a time.

The gateway runs in-process (uvicorn on its own thread and loop, port 0); each proxy runs
as the comparison runs it, ``python -m comparison.proxy`` in a subprocess
(``comparison.proxy.launch``), awaited on its ``listening on`` line, then on ``/__proxy/stats``.
The block-websocket outcome is one suite parametrized over the Python profile and the
nginx configuration, so "nginx does the same" is shown, not claimed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import socketio
from httpx_sse import ServerSentEvent, aconnect_sse

from comparison import nginx
from comparison.proxy import ProxyProcess, StatsSnapshot, classify, make_profile, read_stats, reset_stats
from comparison.proxy.profiles import Stack

from .servers import NginxProcess, ThreadedGateway, free_port, timeout

# -- servers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway() -> Iterator[ThreadedGateway]:
    # Hundreds of streams opened at once through the proxy, all from its one address: more
    # new sessions in a burst than the default limit lets one address open (test_limits.py).
    server = ThreadedGateway(address_session_burst=1000).start()
    yield server
    server.stop()


@pytest.fixture
def start_proxy(gateway: ThreadedGateway) -> Iterator[Callable[..., ProxyProcess]]:
    started: list[ProxyProcess] = []

    def start(profile: str, *options: str) -> ProxyProcess:
        started.append(ProxyProcess(gateway.url, profile, *options, start_timeout=timeout(10)))
        return started[-1]

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="module")
def passthrough(gateway: ThreadedGateway) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(gateway.url, "passthrough", start_timeout=timeout(10))
    yield proxy
    proxy.stop()


@dataclass
class Blocker:
    """A proxy that blocks WebSocket: its URL, and where its counters are (nginx has none)."""

    kind: str
    url: str
    stats_url: str | None


@pytest.fixture(params=["python", "nginx"])
def blocker(request: pytest.FixtureRequest, gateway: ThreadedGateway, tmp_path: Path) -> Iterator[Blocker]:
    if request.param == "python":
        proxy = ProxyProcess(gateway.url, "block-websocket", start_timeout=timeout(10))
        yield Blocker("python", proxy.url, proxy.url)
        proxy.stop()
        return
    if not nginx.NGINX.exists():
        pytest.skip(f"{nginx.NGINX} is absent (scripts/system-deps.sh installs nginx-light)")
    server = NginxProcess(gateway.port, tmp_path / "nginx")
    yield Blocker("nginx", server.url, None)
    server.stop()


# -- clients ---------------------------------------------------------------------------


async def stats(url: str) -> StatsSnapshot:
    return await asyncio.to_thread(read_stats, url)


async def eventually(check: Callable[[], bool], within: float, what: str) -> None:
    """Wait, bounded, for a condition a client observes (its transport, say)."""
    deadline = time.monotonic() + timeout(within)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.02)


async def stats_until(url: str, check: Callable[[StatsSnapshot], bool], within: float, what: str) -> StatsSnapshot:
    """Read the proxy's counters until ``check`` holds, bounded in time."""
    deadline = time.monotonic() + timeout(within)
    while not check(snapshot := await stats(url)):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what} ({snapshot})")
        await asyncio.sleep(0.05)
    return snapshot


@asynccontextmanager
async def chat_client(url: str, transports: list[str] | None = None) -> AsyncIterator[socketio.AsyncClient]:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, namespaces=["/chat"], transports=transports, wait_timeout=timeout(5))
    try:
        yield client
    finally:
        if client.transport() == "polling":
            # python-engineio's server drops a polling session on the client's close packet
            # without answering its pending long-poll, so a graceful disconnect() waits for
            # the next ping (25 s), proxy or not. Tests abort instead.
            await client.eio.disconnect(abort=True)
        else:
            await client.disconnect()


def http_client() -> httpx.AsyncClient:
    # No pool limit: some tests hold hundreds of streams; no proxy from the environment.
    return httpx.AsyncClient(timeout=timeout(10), trust_env=False,
                             limits=httpx.Limits(max_connections=None, max_keepalive_connections=20))


@asynccontextmanager
async def sse_stream(client: httpx.AsyncClient, url: str) -> AsyncIterator[asyncio.Queue[ServerSentEvent | None]]:
    """Open ``/sse/connect?namespace=/chat``; events arrive in the queue, ``None`` when the stream ends."""
    events: asyncio.Queue[ServerSentEvent | None] = asyncio.Queue(maxsize=1000)
    async with aconnect_sse(client, "GET", f"{url}/sse/connect?namespace=/chat") as source:
        source.response.raise_for_status()

        async def read() -> None:
            try:
                async for event in source.aiter_sse():
                    await events.put(event)
            except httpx.HTTPError:
                pass  # cut mid-stream: that is an end too
            await events.put(None)

        reader = asyncio.create_task(read())
        try:
            yield events
        finally:
            reader.cancel()


async def next_event(events: asyncio.Queue[ServerSentEvent | None], within: float) -> ServerSentEvent | None:
    return await asyncio.wait_for(events.get(), timeout(within))


async def stream_end(events: asyncio.Queue[ServerSentEvent | None], within: float) -> None:
    """Skip events until the stream ends, bounded in time and count."""
    async with asyncio.timeout(timeout(within)):
        for _ in range(1000):
            if await events.get() is None:
                return
    raise AssertionError("the stream did not end")


# -- pure pieces -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/socket.io/", {"EIO": "4", "transport": "polling"}, "socketio-polling"),
        ("/socket.io/", {"EIO": "4", "transport": "websocket", "sid": "x"}, "socketio-websocket"),
        ("/socket.io/", {}, "other"),
        ("/sse/connect", {"namespace": "/chat"}, "sse-stream"),
        ("/sse/sessions/abc/publish", {}, "sse-post"),
        ("/sse/sessions/abc", {}, "sse-post"),
        ("/healthz", {"transport": "websocket"}, "other"),
        ("/sse/connectx", {}, "other"),
    ],
)
def test_classify_names_the_transport_from_path_and_query(path: str, query: dict[str, str], expected: str) -> None:
    assert classify(path, query) == expected


def test_the_public_api_is_pinned() -> None:
    import comparison.proxy

    assert sorted(comparison.proxy.__all__) == [
        "Counters", "PROFILES", "Profile", "ProfileOptions", "Proxy", "ProxyProcess", "ProxyStartError",
        "StatsSnapshot", "TRANSPORT_CLASSES",
        "TransportClass", "classify", "make_profile", "read_stats", "reset_stats",
    ]
    assert sorted(comparison.proxy.PROFILES) == ["block-websocket", "buffering", "drop", "idle-timeout", "passthrough"]


def test_profiles_stack_and_unknown_names_are_refused() -> None:
    stacked = make_profile("block-websocket+idle-timeout")
    assert isinstance(stacked, Stack)
    assert stacked.name == "block-websocket+idle-timeout"
    assert [c.reason for c in stacked.cutoffs()] == ["idle"]
    with pytest.raises(ValueError, match="unknown profile"):
        make_profile("corporate")


# -- passthrough -----------------------------------------------------------------------------


async def test_passthrough_relays_websocket_only_socketio(passthrough: ProxyProcess) -> None:
    await asyncio.to_thread(reset_stats, passthrough.url)
    async with chat_client(passthrough.url, ["websocket"]) as client:
        assert client.transport() == "websocket"
        ack = await client.call("join", {"room": "r"}, namespace="/chat", timeout=timeout(5))
        assert ack["ok"] is True
    counted = (await stats(passthrough.url))["socketio-websocket"]
    assert counted.websocket_upgrades == 1
    assert counted.bytes_to_client > 0 and counted.bytes_to_upstream > 0
    assert counted.upgrades_refused == 0


async def test_passthrough_lets_the_default_client_upgrade(passthrough: ProxyProcess) -> None:
    await asyncio.to_thread(reset_stats, passthrough.url)
    async with chat_client(passthrough.url) as client:
        await eventually(lambda: client.transport() == "websocket", 5, "upgrade to websocket")
        ack = await client.call("join", {"room": "r"}, namespace="/chat", timeout=timeout(5))
        assert ack["ok"] is True
    counted = await stats(passthrough.url)
    assert counted["socketio-polling"].requests >= 1 and counted["socketio-polling"].bytes_to_client > 0
    assert counted["socketio-websocket"].websocket_upgrades == 1


async def test_passthrough_streams_sse_events_as_they_happen(
    passthrough: ProxyProcess, gateway: ThreadedGateway
) -> None:
    await asyncio.to_thread(reset_stats, passthrough.url)
    async with http_client() as client, sse_stream(client, passthrough.url) as events:
        opened = await next_event(events, 5)
        assert opened is not None and opened.event == "open"
        sid, key = opened.json()["sid"], opened.json()["key"]
        joined = await client.post(
            f"{passthrough.url}/sse/sessions/{sid}/join", json={"room": "r"}, headers={"X-Session-Key": key}
        )
        assert joined.json()["ok"] is True
        # A small event emitted after the stream opened arrives on its own: nothing is held.
        await gateway.arun(gateway.gateway.emit("/chat", "announcement", {"text": "hi"}))
        for _ in range(10):
            event = await next_event(events, 5)
            assert event is not None
            if event.event == "announcement":
                break
        else:
            raise AssertionError("the announcement did not arrive")
    counted = await stats(passthrough.url)
    assert counted["sse-stream"].requests == 1 and counted["sse-stream"].bytes_to_client > 0
    assert counted["sse-post"].requests == 1 and counted["sse-post"].bytes_to_upstream > 0


async def test_passthrough_holds_hundreds_of_concurrent_streams(passthrough: ProxyProcess) -> None:
    streams = 200
    async with http_client() as client:

        async def one(opened: asyncio.Event, release: asyncio.Event) -> str:
            async with sse_stream(client, passthrough.url) as events:
                event = await next_event(events, 10)
                assert event is not None and event.event == "open"
                opened.set()
                await asyncio.wait_for(release.wait(), timeout(20))
                return event.event

        flags = [asyncio.Event() for _ in range(streams)]
        release = asyncio.Event()
        tasks = [asyncio.create_task(one(flag, release)) for flag in flags]
        try:
            await asyncio.wait_for(asyncio.gather(*(f.wait() for f in flags)), timeout(15))
            # Every stream is open at once, through one proxy process.
            assert (await stats(passthrough.url)).connections >= streams
        finally:
            release.set()
            results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout(15))
        assert results == ["open"] * streams
        # Clients that leave free their connections at the proxy (only the stats reader stays).
        await stats_until(passthrough.url, lambda s: s.connections <= 1, 5, "connections closed")


async def test_an_unreachable_upstream_is_a_502_and_counted() -> None:
    proxy = ProxyProcess(f"http://127.0.0.1:{free_port()}", "passthrough", start_timeout=timeout(10))
    try:
        async with http_client() as client:
            response = await client.get(f"{proxy.url}/healthz")
        assert response.status_code == 502
        assert (await stats(proxy.url))["other"].upstream_errors == 1
    finally:
        proxy.stop()


# -- block-websocket: the Python profile and nginx, same outcome ----------------------------------


async def test_blocker_fails_a_websocket_only_client(blocker: Blocker) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        async with chat_client(blocker.url, ["websocket"]):
            pass
    if blocker.stats_url is not None:
        counted = (await stats(blocker.stats_url))["socketio-websocket"]
        assert counted.upgrades_refused == 1 and counted.websocket_upgrades == 0


async def test_blocker_keeps_the_default_client_on_polling(blocker: Blocker) -> None:
    async with chat_client(blocker.url) as client:
        # python-engineio tries the upgrade inside connect(): by now it has failed.
        assert client.transport() == "polling"
        ack = await client.call("join", {"room": "r"}, namespace="/chat", timeout=timeout(5))
        assert ack["ok"] is True and ack["result"]["room"] == "r"
        echoed = await client.call("echo", {"n": 1}, namespace="/chat", timeout=timeout(5))
        assert echoed == {"ok": True, "result": {"n": 1}}
        assert client.transport() == "polling"
    if blocker.stats_url is not None:
        counted = await stats(blocker.stats_url)
        assert counted["socketio-websocket"].upgrades_refused == 1
        assert counted["socketio-polling"].requests >= 3
        assert counted["socketio-polling"].bytes_to_upstream > 0


async def test_blocker_streams_sse(blocker: Blocker) -> None:
    async with http_client() as client, sse_stream(client, blocker.url) as events:
        opened = await next_event(events, 5)
        assert opened is not None and opened.event == "open"
        sid, key = opened.json()["sid"], opened.json()["key"]
        joined = await client.post(
            f"{blocker.url}/sse/sessions/{sid}/join", json={"room": "r"}, headers={"X-Session-Key": key}
        )
        assert joined.json()["ok"] is True
        event = await next_event(events, 5)
        assert event is not None and event.event == "joined" and event.json()["room"] == "r"
    if blocker.stats_url is not None:
        counted = await stats(blocker.stats_url)
        assert counted["sse-stream"].requests == 1 and counted["sse-stream"].bytes_to_client > 0
        assert counted["sse-post"].requests == 1


# -- buffering, idle-timeout, drop ----------------------------------------------------------------


async def test_buffering_holds_small_sse_events_until_the_buffer_fills(
    start_proxy: Callable[..., ProxyProcess], gateway: ThreadedGateway
) -> None:
    proxy = start_proxy("buffering", "--buffer-kib", "4")
    async with http_client() as client:
        # A whole small response passes: it is released at its end.
        assert (await client.get(f"{proxy.url}/healthz")).json() == {"status": "ok"}
        async with sse_stream(client, proxy.url) as events:
            # The headers came through (the stream opened) but the ~250-byte open event is held.
            with pytest.raises(TimeoutError):
                await next_event(events, 1.5)
            # Once 4 KiB are pending the proxy releases them at once: open, then the emit.
            await gateway.arun(gateway.gateway.emit("/chat", "announcement", {"pad": "x" * 5000}))
            opened = await next_event(events, 5)
            assert opened is not None and opened.event == "open"
            announced = await next_event(events, 5)
            assert announced is not None and announced.event == "announcement"
    assert (await stats(proxy.url))["sse-stream"].bytes_to_client >= 4096


async def test_idle_timeout_cuts_a_quiet_stream_but_not_a_busy_connection(
    start_proxy: Callable[..., ProxyProcess],
) -> None:
    proxy = start_proxy("idle-timeout", "--idle-timeout", "1")
    async with http_client() as client:
        async with sse_stream(client, proxy.url) as events:
            opened = await next_event(events, 5)
            assert opened is not None and opened.event == "open"
            quiet_since = time.monotonic()
            await stream_end(events, 1 + 3)  # the next gateway ping is 25 s away
            quiet_for = time.monotonic() - quiet_since
        assert 0.8 <= quiet_for <= timeout(1 + 2), quiet_for
        # One keep-alive connection with a request every 0.3 s is never quiet for 1 s.
        async with httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=1)) as busy:
            for _ in range(6):
                assert (await busy.get(f"{proxy.url}/healthz")).status_code == 200
                await asyncio.sleep(0.3)  # pacing, not waiting for anything
            counted = await stats(proxy.url)
    assert counted["sse-stream"].cuts_idle == 1
    assert counted["other"].cuts_idle == 0 and counted["other"].requests == 6


async def test_drop_closes_every_connection_within_its_lifetime(
    start_proxy: Callable[..., ProxyProcess],
) -> None:
    proxy = start_proxy("drop", "--drop-min", "0.3", "--drop-max", "0.8", "--seed", "7")
    async with http_client() as client:

        async def lifetime() -> float:
            async with sse_stream(client, proxy.url) as events:
                started = time.monotonic()
                opened = await next_event(events, 5)
                assert opened is not None and opened.event == "open"
                await stream_end(events, 0.8 + 3)
                return time.monotonic() - started

        async def websocket_lifetime() -> float:
            client = socketio.AsyncClient(reconnection=False)
            gone = asyncio.Event()
            client.on("disconnect", lambda *reason: gone.set(), namespace="/chat")
            started = time.monotonic()
            await client.connect(proxy.url, namespaces=["/chat"], transports=["websocket"], wait_timeout=timeout(5))
            await asyncio.wait_for(gone.wait(), timeout(0.8 + 3))
            return time.monotonic() - started

        lifetimes = await asyncio.gather(*(lifetime() for _ in range(3)), websocket_lifetime())
    assert all(t <= timeout(0.8 + 0.5) for t in lifetimes), lifetimes
    counted = await stats(proxy.url)
    assert counted["sse-stream"].cuts_drop == 3
    assert counted["socketio-websocket"].cuts_drop == 1
