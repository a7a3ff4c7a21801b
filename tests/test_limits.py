"""Rate and connection limits (gateway/core/limits.py): the pure pieces, then each limit over every
transport against a real gateway, the clients backing off, and no connection count leaking.

Each gateway here keeps one limit small and the others off, so a test sees only the limit it
is about; its windows are short (a second or less), scaled by ``TIMEOUT_FACTOR``.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import random
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gateway.core.limits import (
    ConnectionCounter,
    KeyedBuckets,
    Limits,
    TokenBucket,
    address_key,
    client_address,
)
from gateway.core.sessions import Session
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.wire.errors import GatewayError, RateLimited, error_from_wire
from rtclient import SocketIOClient, SseClient
from rtclient.blocking import BlockingClient
from rtclient.protocol import Backoff, retry_after, retry_delay

from .drivers import Driver, SseDriver, expect_error
from .servers import FACTOR, ThreadedGateway, node_outcome, timeout, wait_state

ROOT = pathlib.Path(__file__).resolve().parents[1]
OFF = {"address_max_connections": 0, "address_session_rate": 0, "session_publish_rate": 0, "max_sessions": 0}


def limited(**limits: Any) -> ThreadedGateway:
    """A gateway with only ``limits`` on; pings short, so a silent drop is noticed in seconds."""
    return ThreadedGateway(**{**OFF, "ping_interval": 1.0, "ping_timeout": 1.0, "recovery_window": 30.0, **limits})


def limited_count(gw: ThreadedGateway, limit: str) -> float:
    return gw.gateway.metrics.limited.labels(limit)._value.get()


def open_connections(gw: ThreadedGateway) -> int:
    return gw.gateway.limits.connections.total


# -- the pure pieces ---------------------------------------------------------------------


class TestTokenBucket:
    def test_burst_then_the_exact_wait_then_refill(self):
        bucket = TokenBucket.full(rate=2.0, burst=3, now=100.0)
        assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
        assert bucket.take(100.0) == pytest.approx(0.5)  # one token comes in 1 / rate
        assert bucket.take(100.25) == pytest.approx(0.25)  # a refusal took nothing
        assert bucket.take(100.5) == 0.0
        assert bucket.take(100.5) == pytest.approx(0.5)

    def test_never_holds_more_than_the_burst(self):
        bucket = TokenBucket.full(rate=10.0, burst=2, now=0.0)
        assert bucket.idle(0.0)
        bucket.take(0.0)
        assert not bucket.idle(0.0) and bucket.idle(0.1)
        assert [bucket.take(1_000.0) for _ in range(3)][:2] == [0.0, 0.0]  # two, not ten thousand
        assert bucket.take(1_000.0) > 0

    def test_a_clock_going_backwards_refills_nothing(self):
        bucket = TokenBucket.full(rate=1.0, burst=1, now=10.0)
        bucket.take(10.0)
        assert bucket.take(5.0) > 0 and bucket.tokens == 0.0


class TestKeyedBuckets:
    def test_keys_are_independent(self):
        buckets = KeyedBuckets(rate=1.0, burst=1)
        assert buckets.take("a", 0.0) == 0.0
        assert buckets.take("a", 0.0) == pytest.approx(1.0)
        assert buckets.take("b", 0.0) == 0.0

    def test_refilled_buckets_are_forgotten(self):
        buckets = KeyedBuckets(rate=10.0, burst=5)  # refilled 0.5 s after its last use
        for i in range(1_000):
            buckets.take(f"10.0.{i // 256}.{i % 256}", i / 1_000)
        assert len(buckets) < 600  # those idle half a second or more are gone
        buckets.take("late", 10.0)
        assert len(buckets) == 1  # all of them, once each had time to refill

    def test_never_more_than_max_keys(self):
        buckets = KeyedBuckets(rate=0.001, burst=1, max_keys=100)  # none refills in the test
        for i in range(10_000):
            buckets.take(str(i), 0.0)
        assert len(buckets) == 100
        assert buckets.take("9999", 0.0) > 0  # the most recent are the ones kept


class TestConnectionCounter:
    def test_limit_release_and_reuse(self):
        counter = ConnectionCounter()
        leases = [counter.acquire("a", 2), counter.acquire("a", 2)]
        assert None not in leases and counter.acquire("a", 2) is None
        assert counter.acquire("b", 2) is not None  # another address is not concerned
        leases[0].release()
        leases[0].release()  # idempotent: every exit path may call it
        assert counter.count("a") == 1 and counter.total == 2
        assert counter.acquire("a", 2) is not None

    def test_keys_go_when_their_last_connection_does(self):
        counter = ConnectionCounter()
        leases = [counter.acquire(str(i), 1) for i in range(1_000)]
        assert len(counter) == 1_000
        for lease in leases:
            assert lease is not None
            lease.release()
        assert len(counter) == 0 and counter.total == 0

    def test_zero_is_no_limit(self):
        counter = ConnectionCounter()
        assert all(counter.acquire("a", 0) is not None for _ in range(10_000))


class TestAddresses:
    @pytest.mark.parametrize(("host", "key"), [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # the same /64: the same host
        ("::ffff:198.51.100.9", "198.51.100.9"),
        ("testclient", "testclient"),
    ])
    def test_keys(self, host, key):
        assert address_key(host) == key

    def test_from_the_asgi_scope(self):
        assert client_address({"client": ("127.0.0.1", 50123)}) == "127.0.0.1"
        assert client_address({"client": None}) is None  # a Unix socket: not limited per address
        assert client_address({}) is None and client_address(None) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def make_limits(**settings: Any) -> tuple[Limits, FakeClock, Metrics]:
    clock, metrics = FakeClock(), Metrics()
    return Limits(Settings(**{**OFF, **settings}), metrics, clock), clock, metrics


class TestLimits:
    def test_connections_per_address(self):
        limits, _, metrics = make_limits(address_max_connections=2)
        held = [limits.connection("a"), limits.connection("a")]
        with pytest.raises(RateLimited) as refused:
            limits.connection("a")
        assert refused.value.detail == {"retryAfter": 5.0, "limit": "address_connections"}
        assert limits.connection(None) is not None  # an address nobody reported: not limited
        held[0].release()
        limits.connection("a")
        assert metrics.limited.labels("address_connections")._value.get() == 1

    def test_new_sessions_per_address_and_resumes(self):
        limits, clock, _ = make_limits(address_session_rate=4.0, address_session_burst=2)
        limits.open_session("a", 0, fresh=True)
        limits.open_session("a", 0, fresh=True)
        with pytest.raises(RateLimited) as refused:
            limits.open_session("a", 0, fresh=True)
        assert refused.value.retry_after == 0.25 and refused.value.detail["limit"] == "address_sessions"
        limits.open_session("a", 0, fresh=False)  # a resume is not a new session
        limits.open_session("b", 0, fresh=True)
        clock.now += 0.25
        limits.open_session("a", 0, fresh=True)

    def test_node_wide_sessions(self):
        limits, _, _ = make_limits(max_sessions=3)
        limits.open_session("a", 2, fresh=True)
        for fresh in (True, False):  # a resume that brings a session here counts too
            with pytest.raises(RateLimited) as refused:
                limits.open_session("b", 3, fresh=fresh)
            assert refused.value.detail["limit"] == "sessions"

    def test_publishes_and_emits_per_session(self):
        limits, clock, _ = make_limits(session_publish_rate=10.0, session_publish_burst=3)
        mine, other = Session("s1", "/chat"), Session("s2", "/chat")
        for _ in range(3):
            limits.request(mine)
        with pytest.raises(RateLimited) as refused:
            limits.request(mine)
        assert refused.value.detail == {"retryAfter": 0.1, "limit": "session_publish"}
        limits.request(other)
        clock.now += 0.1
        limits.request(mine)

    def test_off(self):
        limits, _, _ = make_limits()
        session = Session("s", "/")
        for _ in range(10_000):
            limits.request(session)
            limits.open_session("a", 10**9, fresh=True)
        assert session.bucket is None

    def test_the_error_round_trips(self):
        error = error_from_wire(RateLimited("slow down", retryAfter=0.25, limit="session_publish").to_wire())
        assert isinstance(error, RateLimited) and error.status == 429 and error.retry_after == 0.25
        assert RateLimited("no detail").retry_after == 1.0
        assert RateLimited("junk", retryAfter=float("nan")).retry_after == 1.0


class TestClientRetry:
    def test_retry_after_reads_rate_limited_only(self):
        assert retry_after(RateLimited("x", retryAfter=0.3)) == 0.3
        assert retry_after(RateLimited("x")) == 1.0
        assert retry_after(RateLimited("x", retryAfter=1e9)) == 60.0  # bounded
        assert retry_after(GatewayError("boom")) is None and retry_after(ValueError()) is None

    def test_delay_is_at_least_the_wait_asked_with_growing_jitter(self):
        backoff, rng = Backoff(base=0.2, cap=10.0), random.Random(7)
        error = RateLimited("x", retryAfter=0.5)
        first = [retry_delay(error, 1, backoff, rng) for _ in range(200)]
        later = [retry_delay(error, 5, backoff, rng) for _ in range(200)]
        assert min(first) >= 0.5 and max(first) <= 1.0
        assert min(later) >= 0.5 and max(later) > 2.0  # spread out: a refused burst does not return at once
        assert retry_delay(GatewayError("boom"), 3, backoff, rng) == 0.2  # other transient errors: as before


# -- each limit against a real gateway, over every transport ------------------------------


@pytest.fixture(scope="module")
def few_connections() -> Iterator[ThreadedGateway]:
    gw = limited(address_max_connections=3).start()
    yield gw
    gw.stop()


async def test_connections_per_address_refused_then_released(
    few_connections: ThreadedGateway, clients: Callable[..., Driver], transport: str
) -> None:
    """The 4th concurrent connection from one address is refused (429 + Retry-After, or
    connect_error); every way a connection ends gives its place back: open 3, end them, open 3."""
    gw = few_connections
    await wait_state(lambda: open_connections(gw) == 0, what="a clean start")
    # a connect refused for another reason holds no place
    stranger = clients(transport, gw.url)
    if transport == "sse-post":
        await expect_error("unknown_sid", stranger.connect("/chat", params={"sid": "nobody"},
                                                          headers={"X-Session-Key": "nokey"}))
    else:
        await expect_error("unknown_sid", stranger.connect("/chat", auth={"sid": "nobody", "key": "nokey"}))
    assert open_connections(gw) == 0

    first = [clients(transport, gw.url) for _ in range(3)]
    for driver in first:
        await driver.connect("/chat")
    assert open_connections(gw) == 3
    refused = await expect_error("rate_limited", clients(transport, gw.url).connect("/chat"))
    assert refused.detail["limit"] == "address_connections" and refused.detail["retryAfter"] > 0
    async with httpx.AsyncClient(base_url=gw.url) as http:  # any transport counts against the same address
        answer = await http.get("/sse/connect", params={"namespace": "/chat"})
    assert answer.status_code == 429 and answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) >= 1 and answer.json()["code"] == "rate_limited"
    assert open_connections(gw) == 3  # the refusals hold nothing

    # a goodbye, and two connections lost without one
    await first[0].close()
    await first[1].drop()
    await first[2].drop()
    await wait_state(lambda: open_connections(gw) == 0, what="every place given back")
    again = [clients(transport, gw.url) for _ in range(3)]
    for driver in again:
        await driver.connect("/chat")
    await expect_error("rate_limited", clients(transport, gw.url).connect("/chat"))
    # a resume is a connection too: the dropped session comes back once a place is free
    await again[0].drop()
    await wait_state(lambda: open_connections(gw) == 2, what="the drop")
    await first[1].connect("/chat", resume=True)
    assert open_connections(gw) == 3


async def test_connections_counted_across_transports(few_connections: ThreadedGateway, clients) -> None:
    gw = few_connections
    await wait_state(lambda: open_connections(gw) == 0, what="a clean start")
    for transport in ("sse-post", "socketio-websocket", "socketio-polling"):
        await clients(transport, gw.url).connect("/chat")
    for transport in ("sse-post", "socketio-websocket"):
        await expect_error("rate_limited", clients(transport, gw.url).connect("/chat"))


async def test_behind_a_trusted_proxy_each_client_counts_on_its_own(
    few_connections: ThreadedGateway, clients: Callable[..., Driver]
) -> None:
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 by default (--forwarded-allow-ips): behind a
    proxy there, the limits count the client's address, not the proxy's."""
    gw = few_connections
    await wait_state(lambda: open_connections(gw) == 0, what="a clean start")
    office = {"X-Forwarded-For": "203.0.113.5"}
    for _ in range(3):
        await clients("sse-post", gw.url).connect("/chat", headers=office)
    await expect_error("rate_limited", clients("sse-post", gw.url).connect("/chat", headers=office))
    await clients("sse-post", gw.url).connect("/chat", headers={"X-Forwarded-For": "2001:db8::7"})
    assert gw.gateway.limits.connections.count("203.0.113.5") == 3
    assert gw.gateway.limits.connections.count("2001:db8::/64") == 1


async def test_stream_whose_head_cannot_be_sent_gives_its_place_back(few_connections: ThreadedGateway) -> None:
    """The client left before the stream's head went out: the response never streams, yet its
    session is detached and its connection count released."""
    from gateway.transports.sse import EventStreamResponse, SseChannel

    gw = few_connections
    await wait_state(lambda: open_connections(gw) == 0, what="a clean start")

    async def attempt() -> tuple[str, int]:
        gateway = gw.gateway
        lease = gateway.limits.connection("198.51.100.1")
        channel = SseChannel(gateway, gateway.transports["sse"])  # type: ignore[arg-type]
        channel.session = await gateway.connect("/chat", channel, {}, address="198.51.100.1")
        response = EventStreamResponse(gateway, channel, gateway.transports["sse"], 1.0, lease)  # type: ignore[arg-type]

        async def gone(message: dict[str, Any]) -> None:
            raise OSError("the client went away")

        with pytest.raises(OSError):
            await response({"type": "http"}, None, gone)  # type: ignore[arg-type]
        return channel.session.state.value, gateway.limits.connections.count("198.51.100.1")

    assert await gw.arun(attempt()) == ("detached", 0)


async def test_new_sessions_per_address(clients: Callable[..., Driver], transport: str) -> None:
    """A burst of new sessions, then rate_limited with the wait to honour; a resume is not a new
    session; after the wait, a new one is accepted."""
    gw = limited(address_session_rate=1.0 / FACTOR, address_session_burst=3).start()
    try:
        made = [clients(transport, gw.url) for _ in range(3)]
        for driver in made:
            await driver.connect("/chat")
        refused = await expect_error("rate_limited", clients(transport, gw.url).connect("/chat"))
        assert refused.detail["limit"] == "address_sessions"
        assert 0 < refused.detail["retryAfter"] <= 1.0 * FACTOR
        sid = made[0].sid
        await made[0].drop()
        await made[0].connect("/chat", resume=True)  # the same session, whatever the bucket holds
        assert made[0].sid == sid
        await asyncio.sleep(refused.detail["retryAfter"])  # what is tested: the wait it said is enough
        await clients(transport, gw.url).connect("/chat")
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def few_publishes() -> Iterator[ThreadedGateway]:
    gw = limited(session_publish_rate=2.0 / FACTOR, session_publish_burst=3).start()
    yield gw
    gw.stop()


async def test_publish_bucket_refuses_and_changes_nothing(
    few_publishes: ThreadedGateway, clients: Callable[..., Driver], transport: str
) -> None:
    gw = few_publishes
    room = f"bucket-{transport}"
    pub, sub = clients(transport, gw.url), clients("sse-post", gw.url)
    await pub.connect("/chat"), await sub.connect("/chat")
    joined = (await pub.join(room))["offset"]
    await sub.join(room)
    for i in range(3):
        await pub.publish(room, i)
    refused = await expect_error("rate_limited", pub.publish(room, "late", clientEventId="late-1"))
    assert refused.detail["limit"] == "session_publish"
    assert 0 < refused.detail["retryAfter"] <= 0.5 * FACTOR
    await expect_error("rate_limited", pub.emit("echo", "also"))  # emits draw on the same bucket
    if isinstance(pub, SseDriver):
        answer = await pub.post("publish", {"room": room, "data": "late"})
        assert answer.status_code == 429 and int(answer.headers["retry-after"]) >= 1
    logged = await gw.arun(gw.gateway.broker.replay("/chat", room, joined))
    assert [e.data for e in logged.events] == [0, 1, 2]  # nothing refused was logged
    # after the wait it asked for, the same clientEventId is taken as new: the refusal kept nothing
    await asyncio.sleep(refused.detail["retryAfter"])
    ack = await pub.publish(room, "late", clientEventId="late-1")
    events = await sub.wait_room_events(room, 4)
    assert [e["data"] for e in events] == [0, 1, 2, "late"] and events[-1]["offset"] == ack["offset"]


async def test_node_wide_session_cap(clients: Callable[..., Driver], transport: str) -> None:
    """Sessions one node holds, connected or recoverable: the third is refused; resuming a held
    one is not a new one; a session that ends makes room."""
    gw = limited(max_sessions=2).start()
    try:
        a, b = clients(transport, gw.url), clients(transport, gw.url)
        await a.connect("/chat"), await b.connect("/chat")
        refused = await expect_error("rate_limited", clients(transport, gw.url).connect("/chat"))
        assert refused.detail["limit"] == "sessions" and refused.detail["retryAfter"] > 0
        sid = a.sid
        await a.drop()
        await wait_state(lambda: gw.session_state(sid) == "detached", what="the drop")
        await expect_error("rate_limited", clients(transport, gw.url).connect("/chat"))  # it still counts
        await a.connect("/chat", resume=True)
        assert a.sid == sid

        async def end(sid: str) -> None:  # as expiry, or an application's kick, would
            gw.gateway.close(gw.gateway.sessions[sid], "ended")

        await gw.arun(end(b.sid))
        await clients(transport, gw.url).connect("/chat")
    finally:
        gw.stop()


async def test_limits_in_metrics(few_publishes: ThreadedGateway, clients: Callable[..., Driver]) -> None:
    gw = few_publishes
    driver = clients("sse-post", gw.url)
    await driver.connect("/chat")
    await driver.join("metrics")
    for i in range(3):
        await driver.publish("metrics", i)
    await expect_error("rate_limited", driver.publish("metrics", "over"))
    async with httpx.AsyncClient(base_url=gw.url) as http:
        text = (await http.get("/metrics")).text
        schema = (await http.get("/openapi.json")).json()
    lines = text.splitlines()
    assert any(line.startswith('gateway_limited_total{limit="session_publish"}') for line in lines)
    assert any(line.startswith('gateway_rejected_total{code="rate_limited"}') for line in lines)
    assert any(line.startswith("gateway_connections ") and float(line.split()[1]) >= 1 for line in lines)
    assert any(line.startswith("gateway_limit_addresses ") for line in lines)
    published = schema["paths"]["/sse/sessions/{sid}/publish"]["post"]["responses"]["429"]
    assert "Retry-After" in published["headers"]


# -- the clients back off and retry -----------------------------------------------------


def python_client(kind: str, url: str) -> SseClient | SocketIOClient:
    return SseClient(url, "/chat") if kind == "sse" else SocketIOClient(url, "/chat", transports=["websocket"])


@pytest.mark.parametrize("kind", ["sse", "socketio"])
async def test_python_client_publish_backs_off_and_succeeds(few_publishes: ThreadedGateway, kind: str) -> None:
    gw = few_publishes
    room = f"backoff-{kind}"
    client = python_client(kind, gw.url)
    await client.connect()
    try:
        joined = (await client.join(room))["offset"]
        before = limited_count(gw, "session_publish")
        sequential = [await client.publish(room, i) for i in range(5)]  # burst 3, then at 2 a second
        together = await asyncio.gather(*(client.publish(room, i) for i in range(5, 8)))
        assert limited_count(gw, "session_publish") > before  # refused on the way, and retried
        assert len({ack["offset"] for ack in [*sequential, *together]}) == 8
        logged = await gw.arun(gw.gateway.broker.replay("/chat", room, joined))
        assert sorted(e.data for e in logged.events) == list(range(8))  # each once
        assert [e.data for e in logged.events][:5] == list(range(5))  # in the order published
    finally:
        await client.close()


async def test_blocking_client_publish_backs_off_and_succeeds(few_publishes: ThreadedGateway) -> None:
    gw = few_publishes
    before = limited_count(gw, "session_publish")

    def run() -> list[dict[str, Any]]:
        client = BlockingClient(gw.url, "/chat", transport="sse", request_timeout=timeout(10))
        client.connect()
        try:
            client.join("backoff-blocking")
            return [client.publish("backoff-blocking", i) for i in range(5)]
        finally:
            client.close()

    acks = await asyncio.wait_for(asyncio.to_thread(run), timeout(20))
    assert len({ack["offset"] for ack in acks}) == 5
    assert limited_count(gw, "session_publish") > before


@pytest.mark.parametrize("kind", ["sse", "socketio"])
async def test_python_client_connect_honours_retry_after(clients: Callable[..., Driver], kind: str) -> None:
    """The address's new-session bucket is empty: the client's connect is refused, waits the
    retryAfter it was given, and opens."""
    gw = limited(address_session_rate=0.5 / FACTOR, address_session_burst=1).start()
    try:
        await clients("sse-post", gw.url).connect("/chat")  # the only token for 2 s
        client = python_client(kind, gw.url)
        started = time.monotonic()
        opened = await client.connect()
        try:
            assert opened.sid and limited_count(gw, "address_sessions") >= 1
            assert time.monotonic() - started >= 1.0 * FACTOR  # it waited, rather than hammering
        finally:
            await client.close()
    finally:
        gw.stop()


# -- rtgateway.js -----------------------------------------------------------------------

JS_SCRIPT = pathlib.Path(__file__).parent / "js" / "rate_limits.mjs"
JS_FILES = ("rtgateway.js", "rtgateway-links.js", "rtgateway-protocol.js")
needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "socket.io-client").exists(),
    reason="needs node and `npm ci`",
)


@pytest.fixture(scope="module")
def js_client(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    where = tmp_path_factory.mktemp("rtgateway-js-limits")
    for name in JS_FILES:
        shutil.copy(ROOT / "gateway" / "static" / name, where / name)
    (where / "package.json").write_text('{"type": "module"}\n')  # the repository's does not say ES modules
    return where / "rtgateway.js"


async def run_js(js_client: pathlib.Path, scenario: str, url: str, transport: str) -> dict[str, Any]:
    node = await asyncio.create_subprocess_exec(
        "node", str(JS_SCRIPT), scenario, url, transport, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "RTGW_CLIENT": str(js_client)},
    )
    return await node_outcome(node, 40)


@pytest.mark.node
@needs_node
@pytest.mark.parametrize("transport", ["sse", "socketio"])
async def test_js_client_publish_honours_retry_after(few_publishes: ThreadedGateway, js_client, transport) -> None:
    before = limited_count(few_publishes, "session_publish")
    result = await run_js(js_client, "publish", few_publishes.url, transport)
    assert len(set(result["offsets"])) == 6 and result["failed"] == []  # every publish acked, once
    assert result["retransmits"] >= 1 and result["reconnects"] == 0  # retried on the same connection
    assert limited_count(few_publishes, "session_publish") > before
    assert result["took"] >= 1000 * FACTOR  # 3 beyond the burst at 2 a second: it waited


@pytest.mark.node
@needs_node
@pytest.mark.parametrize("transport", ["sse", "socketio"])
async def test_js_client_reconnect_honours_retry_after(clients: Callable[..., Driver], js_client, transport) -> None:
    gw = limited(address_session_rate=0.5 / FACTOR, address_session_burst=1).start()
    try:
        await clients("sse-post", gw.url).connect("/chat")  # the only token for 2 s
        result = await run_js(js_client, "connect", gw.url, transport)
        first = result["reconnects"][0]
        assert first["code"] == "rate_limited" and first["retryAfter"] > 0
        assert first["delay"] >= 1000 * first["retryAfter"]  # not before the wait it was told
        assert result["state"] == "open" and result["sid"]
    finally:
        gw.stop()
