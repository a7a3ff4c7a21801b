"""Memory bounded in bytes: room logs (per room, per node, idle rooms, Redis expiry), dedup
acks, and each connection's pending output. Real gateways on 127.0.0.1; both brokers where
the bound applies to both."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from gateway.brokers.redis_streams import StreamState, judge_replay, meta_key, stream_key
from gateway.core.budget import held_bytes
from gateway.core.delivery_log import RoomLog, replay_without_log
from gateway.wire.envelope import Envelope
from gateway.wire.errors import OffsetFromFuture
from gateway.wire.offsets import parse_offset

from .drivers import make_driver
from .servers import REDIS_URL, ThreadedGateway, timeout, wait_state


def room() -> str:
    return f"mem-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["memory", "redis"])
def broker(request: pytest.FixtureRequest, redis_prefix: str) -> dict[str, str]:
    """Settings that put a gateway on one broker or the other."""
    if request.param == "memory":
        return {"broker": "memory"}
    return {"broker": REDIS_URL, "redis_prefix": redis_prefix}


@pytest.fixture
def gateways() -> Iterator[Any]:
    """Start gateways with given settings; all are stopped after the test."""
    started: list[ThreadedGateway] = []

    def start(**settings: Any) -> ThreadedGateway:
        gw = ThreadedGateway(**settings).start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def dropped(gw: ThreadedGateway, reason: str = "slow_consumer") -> float:
    return gw.gateway.metrics.dropped.labels(reason)._value.get()


async def held(gw: ThreadedGateway) -> dict[str, int]:
    """``gateway_held_bytes``'s figures, read on the server's loop."""

    async def read() -> dict[str, int]:
        return held_bytes(gw.gateway)

    return await gw.arun(read())


async def metrics(gw: ThreadedGateway) -> str:
    async def read() -> bytes:
        return gw.gateway.metrics_text()

    return (await gw.arun(read())).decode()


# -- the pure pieces ------------------------------------------------------------------


def env(offset: str, size: int = 0, ts: int = 1_000) -> Envelope:
    return Envelope("/chat", "r", "message", "x" * size, offset, None, None, ts)


class TestRoomLogBytes:
    def test_trims_the_oldest_past_the_byte_bound_and_keeps_the_newest(self):
        log = RoomLog(epoch_ms=500, max_length=100, max_age_s=60, max_bytes=2_500)
        for _ in range(5):
            log.append(env(log.next_offset()), now_ms=1_000, size=1_000)
        assert len(log) == 2 and log.bytes == 2_000
        assert not log.since("500-2").complete and log.since("500-3").complete
        log.append(env(log.next_offset()), now_ms=1_000, size=10_000)  # larger than the bound: kept alone
        assert len(log) == 1 and log.bytes == 10_000

    def test_eviction_is_a_gap_like_any_trim(self):
        log = RoomLog(epoch_ms=500, max_length=100, max_age_s=60)
        for _ in range(3):
            log.append(env(log.next_offset()), now_ms=1_000, size=10)
        assert log.evict_oldest() == 10 and log.bytes == 20
        assert not log.since("500-0").complete and log.since("500-1").complete

    def test_a_dropped_log_is_judged_by_where_it_ended(self):
        ended = (500, 7)
        assert replay_without_log("500-7", ended, (500, 0), 2_000).complete
        assert not replay_without_log("500-3", ended, (500, 0), 2_000).complete
        with pytest.raises(OffsetFromFuture):
            replay_without_log("500-8", ended, (500, 0), 2_000)
        # forgotten: any offset of this process is complete, one of an earlier process a gap
        assert replay_without_log("900-3", None, (500, 0), 2_000).complete
        assert not replay_without_log("400-3", None, (500, 0), 2_000).complete
        with pytest.raises(OffsetFromFuture):
            replay_without_log("3000-0", None, (500, 0), 2_000)


NOW = 1_000_000


@pytest.mark.parametrize(
    ("after", "kwargs", "complete"),
    [
        ("500-3", {"ended": (500, 3), "max_age_ms": 1_000}, True),  # expired idle: from its end, nothing missed
        ("500-2", {"ended": (500, 3), "max_age_ms": 1_000}, False),  # from before its end: aged out
        ("500-3", {"ended": (500, 3), "max_age_ms": 10_000_000}, False),  # gone before its time: lost
        ("500-3", {"since_ms": 400}, True),  # stream and meta expired long ago, same data set
        ("500-3", {"since_ms": 600}, False),  # issued before this data set began: lost
        ("0-0", {"since_ms": 600}, True),
    ],
)
def test_gap_rule_for_a_stream_that_is_not_there(after: str, kwargs: dict[str, Any], complete: bool) -> None:
    assert judge_replay(after, None, NOW, **kwargs) is complete


def test_gap_rule_for_a_stream_created_after_an_expired_one() -> None:
    fresh = StreamState((900, 0), (0, 0), 1, 1, (900, 0))
    assert judge_replay("500-3", fresh, NOW, since_ms=400)  # its predecessor and meta expired long ago
    assert not judge_replay("500-3", fresh, NOW, since_ms=600)
    assert not judge_replay("500-3", fresh, NOW)


# -- room logs ------------------------------------------------------------------------------


async def test_a_log_over_its_byte_bound_is_trimmed_and_a_resume_reports_the_gap(gateways, broker):
    gw = gateways(log_max_bytes=6_000, **broker)
    r = room()
    sub, pub = make_driver("sse-post", gw.url), make_driver("sse-post", gw.url)
    await sub.connect("/chat"), await pub.connect("/chat")
    await sub.join(r), await pub.join(r)
    await pub.publish(r, "seen")
    await sub.wait_room_events(r, 1)
    await sub.drop()
    for i in range(10):  # ~11 KB into a room bounded at 6 KB (and at 1,000 events)
        await pub.publish(r, {"i": i, "pad": "x" * 1_000})
    await sub.connect("/chat", resume=True)
    await sub.until(lambda: bool(sub.control("recovery")), what="recovery")
    [recovery] = sub.control("recovery")
    assert recovery["complete"] is False and [g["room"] for g in recovery["gaps"]] == [r]
    kept = [e["data"]["i"] for e in sub.room_events(r)[1:]]
    assert 3 <= len(kept) <= 5 and kept == list(range(10 - len(kept), 10))  # the newest, in order
    await sub.close(), await pub.close()


async def test_the_node_budget_evicts_the_oldest_entries_of_any_room(gateways):
    gw = gateways(logs_max_bytes=40_000)
    broker = gw.gateway.broker
    old = room()
    sub, pub = make_driver("sse-post", gw.url), make_driver("sse-post", gw.url)
    await sub.connect("/chat"), await pub.connect("/chat")
    await sub.join(old), await pub.join(old)
    await pub.publish(old, "seen")
    await sub.wait_room_events(old, 1)
    await sub.drop()
    await pub.publish(old, {"pad": "x" * 2_000})  # missed, then pushed out by other rooms' events
    rooms = [room() for _ in range(3)]
    for i in range(30):  # ~65 KB over three other rooms, in a known order
        await gw.arun(gw.gateway.emit("/chat", "fill", {"i": i, "pad": "x" * 2_000}, to=rooms[i % 3]))
    assert broker.log_bytes <= 40_000
    kept = []
    for r in rooms:
        kept += [e.data["i"] for e in (await gw.arun(broker.replay("/chat", r, "0-0"))).events]
    kept.sort()
    assert kept == list(range(30 - len(kept), 30)) and len(kept) >= 10  # the newest, whatever their room
    await sub.connect("/chat", resume=True)
    await sub.until(lambda: bool(sub.control("recovery")), what="recovery")
    [recovery] = sub.control("recovery")
    assert [g["room"] for g in recovery["gaps"]] == [old]
    assert f'gateway_held_bytes{{held="logs"}} {float(broker.log_bytes)}' in await metrics(gw)
    await sub.close(), await pub.close()


async def test_an_idle_room_is_trimmed_by_the_sweep_and_its_empty_log_dropped(gateways):
    # max age 0.3 s; a session lives 0.2 + 5 s: what the dropped log issued is kept that long
    gw = gateways(log_max_age=0.3, ping_timeout=0.2, recovery_window=5)
    broker = gw.gateway.broker
    r = room()
    first = await gw.arun(gw.gateway.emit("/chat", "e", "x" * 1_000, to=r))
    last = await gw.arun(gw.gateway.emit("/chat", "e", "x" * 1_000, to=r))
    assert ("/chat", r) in broker._logs and broker.log_bytes > 2_000
    await wait_state(lambda: ("/chat", r) not in broker._logs, 5, "the idle log dropped")
    assert broker.held_bytes()["logs"] == 0
    # A resume from its end is complete, from before it a gap; the next event carries on its offsets.
    assert await gw.arun(broker.position("/chat", r)) == last
    assert (await gw.arun(broker.replay("/chat", r, last))).complete
    assert not (await gw.arun(broker.replay("/chat", r, first))).complete
    after = await gw.arun(gw.gateway.emit("/chat", "e", "again", to=r))
    assert parse_offset(after) > parse_offset(last)
    replay = await gw.arun(broker.replay("/chat", r, last))
    assert replay.complete and [e.offset for e in replay.events] == [after]


async def test_a_dropped_log_is_forgotten_once_no_session_can_need_it(gateways):
    gw = gateways(log_max_age=0.2, ping_timeout=0.1, recovery_window=0.2)
    broker = gw.gateway.broker
    r = room()
    last = await gw.arun(gw.gateway.emit("/chat", "e", "x", to=r))
    await wait_state(lambda: ("/chat", r) not in broker._logs and ("/chat", r) not in broker._ended, 5, "forgotten")
    assert (await gw.arun(broker.replay("/chat", r, last))).complete
    after = await gw.arun(gw.gateway.emit("/chat", "e", "y", to=r))
    assert parse_offset(after) > parse_offset(last)


async def test_a_redis_stream_expires_after_the_log_age_and_its_end_is_remembered(
    gateways, redis_client: aioredis.Redis
):
    prefix = f"rtgwtest-{uuid.uuid4().hex[:10]}"
    gw = gateways(broker=REDIS_URL, redis_prefix=prefix, log_max_age=0.4, ping_timeout=0.2, recovery_window=5)
    broker = gw.gateway.broker
    r = room()
    stream, meta = stream_key(prefix, "/chat", r), meta_key(prefix, "/chat", r)
    try:
        first = await gw.arun(gw.gateway.emit("/chat", "e", "x" * 1_000, to=r))
        last = await gw.arun(gw.gateway.emit("/chat", "e", "x" * 1_000, to=r))
        assert 0 < await redis_client.pttl(stream) <= 400  # refreshed by each append
        assert 400 < await redis_client.pttl(meta) <= 5_600
        assert int(await redis_client.hget(meta, "bytes")) > 2_000
        await _expired(redis_client, stream)
        assert await gw.arun(broker.position("/chat", r)) == last
        assert (await gw.arun(broker.replay("/chat", r, last))).complete
        assert not (await gw.arun(broker.replay("/chat", r, first))).complete
        after = await gw.arun(gw.gateway.emit("/chat", "e", "again", to=r))
        assert parse_offset(after) > parse_offset(last)
        replay = await gw.arun(broker.replay("/chat", r, last))
        assert replay.complete and [e.offset for e in replay.events] == [after]
        assert not (await gw.arun(broker.replay("/chat", r, first))).complete
        # Once its meta hash has expired too (deleted here), an offset of this data set is complete.
        await _expired(redis_client, stream)
        await redis_client.delete(meta)
        assert (await gw.arun(broker.replay("/chat", r, first))).complete
        assert not (await gw.arun(broker.replay("/chat", r, "1000-0"))).complete  # before this data set
    finally:
        keys = [key async for key in redis_client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)


async def _expired(redis_client: aioredis.Redis, key: str) -> None:
    """Wait out ``key``'s time to live. There is nothing to await but time: Redis treats a key
    as gone from the millisecond its TTL ends (expiry is checked on every access)."""
    left = await redis_client.pttl(key)
    assert 0 < left <= timeout(5) * 1000, left  # it does expire, and soon
    await asyncio.sleep(left / 1000 + 0.01)
    assert not await redis_client.exists(key)


async def test_a_redis_stream_is_bounded_in_bytes(gateways, redis_prefix: str, redis_client: aioredis.Redis):
    gw = gateways(broker=REDIS_URL, redis_prefix=redis_prefix, log_max_bytes=5_000)
    r = room()
    for i in range(20):
        await gw.arun(gw.gateway.emit("/chat", "e", {"i": i, "pad": "x" * 1_000}, to=r))
    held = int(await redis_client.hget(meta_key(redis_prefix, "/chat", r), "bytes"))
    entries = await redis_client.xrange(stream_key(redis_prefix, "/chat", r))
    assert held == sum(len(fields[b"r"]) for _, fields in entries) <= 5_000
    assert [orjson.loads(fields[b"r"])["data"]["i"] for _, fields in entries] == list(range(20 - len(entries), 20))


# -- dedup ----------------------------------------------------------------------------------


async def test_dedup_keeps_small_acks_and_not_large_ones(gateways, broker):
    gw = gateways(dedup_entry_max_bytes=5_000, **broker)
    c = make_driver("sse-post", gw.url)
    await c.connect("/chat")
    assert await c.emit("echo", "a", client_event_id="small") == "a"
    assert await c.emit("echo", "b", client_event_id="small") == "a"  # the first ack
    assert await c.emit("echo", "A" * 8_000, client_event_id="big") == "A" * 8_000
    assert await c.emit("echo", "B" * 8_000, client_event_id="big") == "B" * 8_000  # not kept: ran again
    await c.close()


async def test_the_dedup_budget_forgets_the_oldest_acks_first(gateways):
    gw = gateways(dedup_max_bytes=20_000)
    broker = gw.gateway.broker
    c = make_driver("sse-post", gw.url)
    await c.connect("/chat")
    for i in range(20):  # ~60 KB of acks
        await c.emit("echo", f"{i}:" + "x" * 3_000, client_event_id=f"e{i}")
    assert 0 < broker.held_bytes()["dedup"] <= 20_000
    assert (await c.emit("echo", "again", client_event_id="e19")).startswith("19:")  # the newest kept
    assert await c.emit("echo", "again", client_event_id="e0") == "again"  # the oldest forgotten
    await c.close()


# -- pending output ------------------------------------------------------------------------


async def _silent_sse_reader(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """An event stream whose reader stops after ``open``: small buffers, nothing read after."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write(b"GET /sse/connect?namespace=/chat HTTP/1.1\r\nHost: t\r\n\r\n")
    async with asyncio.timeout(timeout(5)):
        while not (line := await reader.readline()).startswith(b"data: {"):
            assert line, "stream ended before open"
    return reader, writer, orjson.loads(line[6:])["sid"]


async def _rest_of(reader: asyncio.StreamReader) -> int:
    """Read to the end of the connection; how many bytes came."""
    total = 0
    try:
        while chunk := await reader.read(65536):
            total += len(chunk)
    except ConnectionResetError:
        pass
    return total


async def test_slow_sse_readers_are_cut_by_the_byte_bound(gateways):
    """100 readers that stopped reading, 5 events of ~1 MB: each is cut as a slow consumer
    once more than the bound (1 MiB) waits for it, and what it did not take is freed at
    once (the connection is reset, not flushed): not 5 MB a reader, not 100 MB held."""
    gw = gateways()
    # The kernel would otherwise take a few MB of each stream (send buffers autotune up to
    # tcp_wmem's 4 MB): accepted sockets inherit this, so user space holds the rest.
    gw.server.servers[0].sockets[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    readers = await asyncio.gather(*(_silent_sse_reader(gw.port) for _ in range(100)))
    try:
        peak = 0
        for i in range(5):
            await gw.arun(gw.gateway.emit("/chat", "big", {"i": i, "pad": "x" * 999_000}))
            peak = max(peak, (await held(gw))["output"])
        assert 0 < peak <= gw.settings.output_max_bytes  # the node's bound on all of them
        sids = [sid for _, _, sid in readers]
        await wait_state(lambda: all(gw.session_state(sid) == "detached" for sid in sids), 10, "all cut")
        assert dropped(gw) == 100
        assert (await held(gw))["output"] == 0
        # Reset: the event being written when it was cut never arrives (a close would flush it).
        received = await asyncio.wait_for(asyncio.gather(*(_rest_of(r) for r, _, _ in readers)), timeout(10))
        assert max(received) < 999_000
    finally:
        for _, writer, _ in readers:
            writer.close()


async def test_an_event_stream_counts_its_bytes_until_the_server_has_written_them(gateways):
    """Pins ``connection.pause_until_written`` (uvicorn internals): the stream's transport
    pauses while it holds any of our bytes, so ``writing`` (and ``held``) last that long."""
    gw = gateways()
    _, writer, _ = await _silent_sse_reader(gw.port)
    try:
        async def limits() -> tuple[int, int]:
            [channel] = gw.gateway.transports["sse"].streams
            return channel._send.__self__.transport.get_write_buffer_limits()

        assert await gw.arun(limits()) == (0, 0)
    finally:
        writer.close()


async def test_the_node_output_budget_cuts_streams_that_would_hold_more(gateways):
    """20 readers that stopped reading, an event of ~1 MB: the node may hold 5 MiB of output,
    so the streams whose write has to wait are cut until what is left fits it."""
    limit = 5 * 1024 * 1024
    gw = gateways(output_max_bytes=limit)
    gw.server.servers[0].sockets[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    readers = await asyncio.gather(*(_silent_sse_reader(gw.port) for _ in range(20)))
    try:
        await gw.arun(gw.gateway.emit("/chat", "big", {"pad": "x" * 999_000}))
        assert 0 < (await held(gw))["output"] <= limit
        assert dropped(gw) >= 20 - limit // 999_000
        states = [gw.session_state(sid) for _, _, sid in readers]
        assert states.count("connected") == 20 - dropped(gw)  # the others stay until they read or time out
    finally:
        for _, writer, _ in readers:
            writer.close()


async def test_a_socketio_socket_too_far_behind_in_bytes_is_cut(gateways):
    """Engine.IO's queue of a polling client that stopped polling: 1,000 packets would be
    allowed, but 1 MiB is passed by the second or third 1 MB event (pins ``ByteQueue``)."""
    from rtclient.aio import abandon

    gw = gateways()
    slow = make_driver("socketio-polling", gw.url)
    await slow.connect("/chat")
    await abandon(slow.client)  # stops polling: its server-side queue only grows
    slow.client = None
    for i in range(4):
        await gw.arun(gw.gateway.emit("/chat", "big", {"i": i, "pad": "x" * 999_000}))
    await wait_state(lambda: gw.session_state(slow.sid) == "detached", 5, "cut")
    assert dropped(gw) == 1


async def test_only_a_socketio_connection_keeps_a_recovery_trail(gateways):
    """``/chat`` has Socket.IO recovery on: its Socket.IO sessions keep a trail, an SSE
    session (which resumes by cursor) none, also once it has resumed."""
    gw = gateways(socketio_recovery=True)
    sio, sse = make_driver("socketio-websocket", gw.url), make_driver("sse-post", gw.url)
    await sio.connect("/chat")
    await sse.connect("/chat")
    assert gw.gateway.recovers("/chat")
    assert gw.gateway.sessions[sio.sid].trail is not None
    assert gw.gateway.sessions[sse.sid].trail is None
    await sse.drop()
    await sse.connect("/chat", resume=True)
    assert gw.gateway.sessions[sse.sid].trail is None
    await sio.close()
    await sse.close()
