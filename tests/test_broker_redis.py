"""The Redis broker against a real Redis at 127.0.0.1:6379, each test under its own key prefix.

The restart test runs its own ``redis-server`` on a free port. Every wait is bounded
by ``WAIT``, scaled by ``RTGW_TIMEOUT_FACTOR`` for slow machines.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import uvicorn
from httpx_sse import aconnect_sse

from gateway import demo
from gateway.app import create_app
from gateway.brokers.base import Command, Dedup, Publication
from gateway.brokers.memory import MemoryBroker
from gateway.brokers.redis import FanoutGap, RedisBroker
from gateway.brokers.redis_streams import StreamState, encode_entry, judge_replay
from gateway.core.sessions import SessionRecord
from gateway.settings import Settings
from gateway.wire.envelope import Envelope
from gateway.wire.errors import BrokerUnavailable, NotJoined, OffsetFromFuture
from gateway.wire.offsets import parse_offset

REDIS_URL = "redis://127.0.0.1:6379/0"
FACTOR = float(os.environ.get("RTGW_TIMEOUT_FACTOR", "1"))
WAIT = 5.0 * FACTOR
STREAM_ID = re.compile(r"^\d+-\d+$")


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=WAIT, socket_connect_timeout=WAIT)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"rtgwtest-{uuid.uuid4().hex}"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await redis_client.delete(*keys)


class Inbox:
    """An ``on_publication`` callback that keeps what it gets and lets a test await one."""

    def __init__(self) -> None:
        self.items: list[Publication] = []
        self._changed = asyncio.Event()

    def __call__(self, publication: Publication) -> None:
        self.items.append(publication)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Publication], bool]) -> Publication:
        async with asyncio.timeout(WAIT):
            while True:
                for item in self.items:
                    if predicate(item):
                        return item
                self._changed.clear()
                await self._changed.wait()

    async def offset(self, offset: str) -> Publication:
        return await self.wait_for(lambda p: p.envelope.offset == offset)

    async def command(self, command: Command) -> Any:
        """Answer a routed command: echo it, or fail with the error it asks for."""
        if command.op == "fail":
            raise NotJoined("as asked", room="r")
        return {"op": command.op, "sid": command.sid, "body": command.body}


Opener = Callable[..., Awaitable[tuple[RedisBroker, Inbox]]]


@pytest.fixture
async def open_broker(prefix: str) -> AsyncIterator[Opener]:
    """Start brokers ("nodes") on this test's prefix; all are closed afterwards."""
    opened: list[RedisBroker] = []

    async def open_(url: str = REDIS_URL, **options: Any) -> tuple[RedisBroker, Inbox]:
        settings_options = {k: options.pop(k) for k in list(options) if k.startswith("log_")}
        broker = RedisBroker(Settings(broker=url, redis_prefix=prefix, **settings_options), **options)
        inbox = Inbox()
        opened.append(broker)
        await broker.start(inbox, inbox.command, lambda: None)
        return broker, inbox

    yield open_
    for broker in opened:
        await broker.close()


def draft(room: str = "r", data: Any = None, *, namespace: str = "/chat", sender: str | None = "s1",
          client_event_id: str | None = None) -> Envelope:
    return Envelope(namespace, room, "message", data, "", sender, client_event_id, 0)


# -- the gap rule, without Redis --------------------------------------------------


def state(last: str, max_deleted: str = "0-0", added: int = 3, length: int = 3,
          first: str | None = "10-0") -> StreamState:
    return StreamState(
        parse_offset(last), parse_offset(max_deleted), added, length,
        None if first is None else parse_offset(first),
    )


NOW = 1_000_000


@pytest.mark.parametrize(
    ("after", "stream", "complete"),
    [
        ("0-0", None, True),  # a room without events, then or now
        ("500-0", None, False),  # issued, and the stream is gone: Redis lost it
        ("10-0", state("12-0"), True),
        ("0-0", state("12-0"), True),  # joined before the first event, nothing trimmed
        ("5-0", state("12-0"), False),  # precedes the stream's first entry: an older copy of the room
        ("11-0", state("12-0", "10-0", added=5, length=2, first="11-0"), True),
        ("10-0", state("12-0", "10-0", added=5, length=2, first="11-0"), True),  # the newest trimmed
        ("9-0", state("12-0", "10-0", added=5, length=2, first="11-0"), False),
        ("12-0", state("12-0", "12-0", added=3, length=0, first=None), True),  # all aged out, none after
        ("11-0", state("12-0", "12-0", added=3, length=0, first=None), False),
        ("10-0", state("12-0", "0-0", added=5, length=2, first="11-0"), False),  # trimmed by hand
        ("11-0", state("12-0", "0-0", added=5, length=2, first="11-0"), True),
        ("13-0", state("12-0"), False),  # past the last id but not the clock: writes were lost
    ],
)
def test_gap_rule(after: str, stream: StreamState | None, complete: bool) -> None:
    assert judge_replay(after, stream, NOW) is complete


@pytest.mark.parametrize("stream", [None, state("12-0")])
def test_offset_ahead_of_the_clock_is_from_the_future(stream: StreamState | None) -> None:
    with pytest.raises(OffsetFromFuture):
        judge_replay(f"{NOW + 1}-0", stream, NOW)


# -- the log ------------------------------------------------------------------------


async def test_offsets_are_stream_ids_increasing_per_room(open_broker: Opener) -> None:
    broker, _ = await open_broker()
    assert await broker.position("/chat", "a") == "0-0"
    offsets: dict[str, list[str]] = {"a": [], "b": []}
    for i in range(10):
        room = "ab"[i % 2]
        offsets[room].append((await broker.publish(draft(room, i), False)).offset)
    for room, seen in offsets.items():
        assert all(STREAM_ID.match(o) for o in seen)
        assert [parse_offset(o) for o in seen] == sorted({parse_offset(o) for o in seen})
        assert await broker.position("/chat", room) == seen[-1]


async def test_replay_returns_the_events_after_an_offset_in_order(open_broker: Opener) -> None:
    broker, _ = await open_broker()
    logged = [await broker.publish(draft("r", {"n": i}, client_event_id=f"c{i}"), i % 2 == 0) for i in range(6)]
    replay = await broker.replay("/chat", "r", logged[2].offset)
    assert replay.complete
    assert replay.events == logged[3:]
    assert (await broker.replay("/chat", "r", "0-0")).events == logged
    assert (await broker.replay("/chat", "r", logged[-1].offset)).events == []
    assert (await broker.replay("/chat", "other", "0-0")).complete


async def test_trimming_by_length_is_a_gap_only_for_offsets_before_the_last_trimmed(
    open_broker: Opener,
) -> None:
    broker, _ = await open_broker(log_max_length=3)
    logged = [await broker.publish(draft("r", i), False) for i in range(5)]
    replay = await broker.replay("/chat", "r", logged[0].offset)
    assert not replay.complete
    assert replay.events == logged[2:]
    # logged[1] is the newest trimmed entry: nothing after it is gone.
    replay = await broker.replay("/chat", "r", logged[1].offset)
    assert replay.complete
    assert replay.events == logged[2:]
    assert not (await broker.replay("/chat", "r", "0-0")).complete


async def test_trimming_by_age(open_broker: Opener, redis_client: aioredis.Redis, prefix: str) -> None:
    broker, _ = await open_broker(log_max_age=60)
    key = f"{prefix}:log:/chat:r"
    # An entry from 1970, as if published long ago: the next publish ages it out.
    await redis_client.xadd(key, {"ts": 1000, "r": encode_entry(draft("r", "old"))}, id="1000-0")
    fresh = await broker.publish(draft("r", "new"), False)
    replay = await broker.replay("/chat", "r", "0-0")
    assert not replay.complete
    assert replay.events == [fresh]
    assert (await broker.replay("/chat", "r", "1000-0")).complete


async def test_offset_from_the_future(open_broker: Opener) -> None:
    broker, _ = await open_broker()
    future = "99999999999999-0"
    with pytest.raises(OffsetFromFuture):
        await broker.replay("/chat", "empty", future)
    await broker.publish(draft("r"), False)
    with pytest.raises(OffsetFromFuture):
        await broker.replay("/chat", "r", future)


async def test_a_stream_redis_lost_is_a_gap_not_an_error(
    open_broker: Opener, redis_client: aioredis.Redis, prefix: str
) -> None:
    broker, _ = await open_broker()
    seen = await broker.publish(draft("r", 1), False)
    await redis_client.delete(f"{prefix}:log:/chat:r")
    replay = await broker.replay("/chat", "r", seen.offset)
    assert (replay.events, replay.complete) == ([], False)
    after = await broker.publish(draft("r", 2), False)
    replay = await broker.replay("/chat", "r", seen.offset)
    assert (replay.events, replay.complete) == ([after], False)


# -- fan-out ------------------------------------------------------------------------


async def test_two_nodes_receive_each_others_publications(open_broker: Opener) -> None:
    one, inbox_one = await open_broker()
    two, inbox_two = await open_broker()
    first = await one.publish(draft("r", "from one"), True)
    second = await two.publish(draft("r", "from two", sender="s2"), False)
    for inbox in (inbox_one, inbox_two):
        assert (await inbox.offset(first.offset)) == Publication(first, True)
        assert (await inbox.offset(second.offset)) == Publication(second, False)


async def test_the_listener_outlives_an_unreadable_message(
    open_broker: Opener, redis_client: aioredis.Redis, prefix: str
) -> None:
    broker, inbox = await open_broker()
    await redis_client.publish(f"{prefix}:fanout", b"not json")
    logged = await broker.publish(draft("r"), False)
    await inbox.offset(logged.offset)
    assert broker.ready


# -- dedup and sessions -----------------------------------------------------------------


async def test_dedup_entries_expire(open_broker: Opener, redis_client: aioredis.Redis, prefix: str) -> None:
    broker, _ = await open_broker()
    assert await broker.dedup_get("k") is None
    await broker.dedup_put("k", {"result": {"room": "r", "offset": "1-0"}}, ttl=30)
    assert await broker.dedup_get("k") == {"result": {"room": "r", "offset": "1-0"}}
    assert 0 < await redis_client.pttl(f"{prefix}:dedup:k") <= 30_000
    await broker.dedup_put("short", {"result": 1}, ttl=0.05)
    await asyncio.sleep(0.1)  # time passing, not readiness: Redis checks a key's expiry on access
    assert await broker.dedup_get("short") is None


async def test_session_records_and_tombstones(
    open_broker: Opener, redis_client: aioredis.Redis, prefix: str
) -> None:
    broker, _ = await open_broker()
    record = SessionRecord("sid1", "/chat", "alice", {"sid1": "0-0", "*": "0-0", "lobby": "12-3"}, "n1", "ab" * 32)
    await broker.save_session(record, ttl=60)
    assert await broker.load_session("sid1") == record
    assert 0 < await redis_client.pttl(f"{prefix}:session:sid1") <= 60_000

    await broker.drop_session("sid1", expired=False, ttl=60)
    assert await broker.load_session("sid1") is None
    assert await broker.expired_session("sid1") is None

    await broker.save_session(record, ttl=60)
    await broker.drop_session("sid1", expired=True, ttl=60, key_hash=record.key_hash)
    assert await broker.load_session("sid1") is None
    assert await broker.expired_session("sid1") == record.key_hash  # told only to the key's holder
    assert 0 < await redis_client.pttl(f"{prefix}:expired:sid1") <= 60_000
    assert await broker.expired_session("never") is None


@pytest.mark.parametrize("kind", ["redis", "memory"])
async def test_a_node_that_lost_a_session_cannot_write_its_record_back(open_broker: Opener, kind: str) -> None:
    """Once node n2 took a session over, n1's late writes (a join's save in flight, a detach,
    a refresh) leave the record n2's; a take-over writes whatever the record said."""
    broker = (await open_broker())[0] if kind == "redis" else MemoryBroker(Settings())
    first = SessionRecord("sid2", "/chat", None, {"lobby": "1-0"}, "n1", "cd" * 32)
    await broker.save_session(first, ttl=60)
    moved = SessionRecord("sid2", "/chat", None, {"lobby": "1-0"}, "n2", "cd" * 32)
    await broker.save_session(moved, ttl=60)  # not a take-over: n1 holds it
    assert await broker.load_session("sid2") == first
    await broker.save_session(moved, ttl=60, take=True)
    assert await broker.load_session("sid2") == moved
    await broker.save_session(SessionRecord("sid2", "/chat", None, {"late": "2-0"}, "n1", "cd" * 32), ttl=60)
    assert await broker.load_session("sid2") == moved
    moved.rooms["more"] = "3-0"
    await broker.save_session(moved, ttl=60)  # its holder writes as before
    assert (await broker.load_session("sid2")) == moved


# -- Redis going away -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway ``redis-server`` without persistence, awaited on its ready line."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.directory), "--logfile", "",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(WAIT):
            while b"Ready to accept connections" not in (line := await self.proc.stdout.readline()):
                if not line:
                    raise RuntimeError(f"redis-server on port {self.port} exited at start")
        self._drain = asyncio.create_task(self._read_rest(self.proc.stdout))

    @staticmethod
    async def _read_rest(stream: asyncio.StreamReader) -> None:
        while await stream.read(65536):
            pass

    async def kill(self) -> None:
        """SIGKILL, like a crash: no goodbye to clients, nothing saved."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            async with asyncio.timeout(WAIT):
                await self.proc.wait()
        if self._drain is not None:
            async with asyncio.timeout(WAIT):
                await self._drain


async def test_redis_restart_readiness_and_recovery(open_broker: Opener, tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path)
    await server.start()
    try:
        broker, inbox = await open_broker(server.url, timeout=0.5 * FACTOR, backoff=(0.05, 0.5))
        gaps: list[FanoutGap] = []
        broker.on_fanout_gap = gaps.append
        assert broker.ready
        before = await broker.publish(draft("r", "before"), False)
        await inbox.offset(before.offset)

        await server.kill()
        async with asyncio.timeout(WAIT):
            await broker.wait_ready(False)
        with pytest.raises(BrokerUnavailable):
            await broker.publish(draft("r", "while down"), False)

        await server.start()
        async with asyncio.timeout(WAIT):
            await broker.wait_ready(True)
        assert broker.missed_fanout_windows == 1
        assert gaps == [broker.last_fanout_gap]
        assert gaps[0].started <= gaps[0].ended

        after = await broker.publish(draft("r", "after"), False)
        await inbox.offset(after.offset)
        # The restarted Redis kept nothing: the room's log starts again, and says so.
        replay = await broker.replay("/chat", "r", before.offset)
        assert (replay.events, replay.complete) == ([after], False)
    finally:
        await server.kill()


async def test_a_silent_redis_is_noticed_by_the_listener_ping(open_broker: Opener, tmp_path: Path) -> None:
    """A link that stays open but answers nothing (here CLIENT PAUSE) must not pass for healthy."""
    server = RedisServer(free_port(), tmp_path)
    await server.start()
    try:
        broker, inbox = await open_broker(
            server.url, timeout=0.3 * FACTOR, ping_interval=0.1 * FACTOR, backoff=(0.05, 0.2)
        )
        admin = aioredis.Redis.from_url(server.url, socket_timeout=WAIT)
        try:
            await admin.client_pause(int(1500 * FACTOR), all=True)
        finally:
            await admin.aclose()
        async with asyncio.timeout(WAIT):
            await broker.wait_ready(False)
            await broker.wait_ready(True)
        assert broker.missed_fanout_windows == 1
        logged = await broker.publish(draft("r"), False)
        await inbox.offset(logged.offset)
    finally:
        await server.kill()


async def test_close_stops_the_listener(open_broker: Opener) -> None:
    broker, _ = await open_broker()
    assert broker.ready
    await broker.close()
    assert not broker.ready


async def test_unreachable_redis_at_start_is_not_ready_and_refuses_to_ack(open_broker: Opener) -> None:
    async with asyncio.timeout(WAIT):
        broker, _ = await open_broker(f"redis://127.0.0.1:{free_port()}/0", timeout=0.3 * FACTOR)
        assert not broker.ready
        with pytest.raises(BrokerUnavailable) as raised:
            await broker.publish(draft("r"), False)
    assert raised.value.code == "broker_unavailable"
    assert "127.0.0.1" not in str(raised.value)  # the cause is logged, not sent to clients


# -- the gateway on Redis -------------------------------------------------------------


class ThreadedServer(uvicorn.Server):
    """uvicorn in a thread, with an event set once it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.up.set()

    @property
    def port(self) -> int:
        return int(self.servers[0].sockets[0].getsockname()[1])


@pytest.fixture
def gateway_url(prefix: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The demo gateway on Redis, configured the way an operator does it: by environment."""
    monkeypatch.setenv("GATEWAY_BROKER", REDIS_URL)
    monkeypatch.setenv("GATEWAY_REDIS_PREFIX", prefix)
    monkeypatch.setenv("GATEWAY_SHUTDOWN_GRACE", "0.1")
    settings = Settings()
    # A factory, so the app (and its broker) is built in the server's own event loop.
    config = uvicorn.Config(
        lambda: create_app(settings, declare=demo.install), factory=True,
        host="127.0.0.1", port=0, log_level="warning", lifespan="on",
    )
    server = ThreadedServer(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    assert server.up.wait(WAIT), "the gateway did not start"
    yield f"http://127.0.0.1:{server.port}"
    server.should_exit = True
    thread.join(WAIT)
    assert not thread.is_alive(), "the gateway did not stop"


async def test_sse_client_gets_its_own_publication_through_redis(
    gateway_url: str, redis_client: aioredis.Redis, prefix: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=WAIT) as client, asyncio.timeout(WAIT):
        ready = await client.get("/readyz")
        assert ready.json() == {"status": "ready", "broker": "redis"}
        async with aconnect_sse(client, "GET", "/sse/connect", params={"namespace": "/chat"}) as source:
            events = source.aiter_sse()
            opened = await anext(events)
            assert opened.event == "open"
            info = orjson.loads(opened.data)
            sid, mine = info["sid"], {"X-Session-Key": info["key"]}

            joined = await client.post(f"/sse/sessions/{sid}/join", json={"room": "r"}, headers=mine)
            assert joined.status_code == 200, joined.text
            published = await client.post(
                f"/sse/sessions/{sid}/publish", json={"room": "r", "data": 1, "includeSelf": True}, headers=mine
            )
            assert published.status_code == 200, published.text
            offset = published.json()["result"]["offset"]

            async for event in events:
                if event.event == "message":
                    break
            message = orjson.loads(event.data)
            assert (message["room"], message["data"], message["sender"]) == ("r", 1, sid)
            assert message["offset"] == offset
            assert STREAM_ID.match(offset)
            assert sid in event.id and f"r={offset}" in event.id  # the resume cursor moved
            logged = await redis_client.xrange(f"{prefix}:log:/chat:r", offset, offset)
            assert logged is not None and [entry_id for entry_id, _ in logged] == [offset.encode()]


async def test_commands_are_routed_to_the_node_holding_the_session(open_broker: Opener) -> None:
    a, _ = await open_broker()
    b, _ = await open_broker()
    result = await a.route(b.node, Command("join", "sid9", {"room": "r"}), timeout=WAIT)
    assert result == {"op": "join", "sid": "sid9", "body": {"room": "r"}}
    with pytest.raises(NotJoined) as err:
        await b.route(a.node, Command("fail", "sid9", {}), timeout=WAIT)
    assert err.value.detail == {"room": "r"}
    with pytest.raises(BrokerUnavailable):  # nobody listens on a node that is gone
        await a.route("no-such-node", Command("join", "sid9", {}), timeout=WAIT)


async def test_publish_stores_its_dedup_entry_in_the_same_step(open_broker: Opener) -> None:
    broker, _ = await open_broker()
    logged = await broker.publish(draft("r", "once"), False, Dedup("k1", 60))
    assert await broker.dedup_get("k1") == {"result": {"room": "r", "offset": logged.offset}}


async def test_a_retransmission_during_the_lookup_runs_once(open_broker: Opener) -> None:
    from gateway.core.dedup import Deduplicator
    from gateway.metrics import Metrics

    broker, _ = await open_broker()
    dedup = Deduplicator(broker, 60, Metrics())
    runs: list[int] = []

    async def work(_: Any) -> int:
        runs.append(1)
        await asyncio.sleep(0.05)
        return 42

    results = await asyncio.gather(*(dedup.once("same-key", work) for _ in range(5)))
    assert results == [42] * 5 and runs == [1]
    assert await dedup.once("same-key", work) == 42 and runs == [1]  # and after, from the broker
