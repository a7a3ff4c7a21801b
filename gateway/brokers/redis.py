"""The Redis broker: room logs in Redis Streams, fan-out over one Pub/Sub channel.

Several gateway nodes pointed at the same Redis (and ``redis_prefix``) share rooms,
logs, dedup entries and session records. Needs Redis 7.0 or later (``XSETID
MAXDELETEDID`` and ``XINFO STREAM``'s ``max-deleted-entry-id``). Keys::

    {prefix}:log:{namespace}:{room}   stream, one entry per room event; its id is the offset;
                                      expires log_max_age after its last append
    {prefix}:logmeta:{namespace}:{room}  hash: the stream's bytes and last id, outliving it
                                      by a session's lifetime (see ``redis_streams``)
    {prefix}:logs-since               when this data set issued its first offset
    {prefix}:fanout                   Pub/Sub channel every node listens to
    {prefix}:node:{node}              Pub/Sub channel of one node: commands routed to it, replies
    {prefix}:dedup:{key}              clientEventId results, with a TTL
    {prefix}:session:{sid}            session records, with a TTL
    {prefix}:expired:{sid}            tombstone of an expired session (its key hash), with a TTL
    {prefix}:overview:{node}          the operator view's snapshot of one node, with a TTL
    {prefix}:overview-nodes           sorted set: node -> when its snapshot expires (Redis time, ms)

A namespace may contain ``:``, so a namespace must not be another one plus ``:...``
(``/a`` and ``/a:b``) or their room keys could meet.

A publication runs as one Lua script (``redis_streams``): ``XADD`` the entry, trim the
stream (by length, age and bytes), set its expiry, ``PUBLISH`` it. So no node ever sees a fan-out message for an event that is not in the log, and
``publish`` returns (and the client is acked) only once the event is logged. Every
node, the publishing one included, delivers to its own subscribers from the
channel: one distribution path.

Failure model: every command is bounded by the socket timeout and raises
``BrokerUnavailable`` when it fails; commands are never retried automatically (a
retried ``XADD`` could log an event twice). The listener survives Redis going
away: it marks the broker not ready, reconnects with a bounded exponential backoff,
and on coming back records the outage as a ``FanoutGap`` (what was published
meanwhile never reached this node's subscribers live; it is in the log).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout
from redis.maint_notifications import MaintNotificationsConfig

from gateway.brokers import redis_presence as presence
from gateway.brokers.base import Command, Dedup, OnCommand, OnGap, OnPublication
from gateway.brokers.redis_streams import (
    POSITION,
    PUBLISH,
    REPLAY,
    StreamState,
    decode_entry,
    decode_fanout,
    dedup_key,
    encode_entry,
    judge_replay,
    meta_key,
    ms,
    publish_call,
    since_key,
    stream_key,
)
from gateway.core.delivery_log import Replay
from gateway.core.presence import Beat, Member, Page, PresenceKey
from gateway.core.sessions import SessionRecord
from gateway.settings import Settings
from gateway.wire import binary
from gateway.wire.envelope import Envelope
from gateway.wire.errors import BrokerUnavailable, GatewayError, error_from_wire
from gateway.wire.offsets import parse_offset

# A session record is written by the node holding the session; once another node took it over,
# the old node's late writes (a join's save in flight, a detach, a refresh) must not point it back.
SAVE_SESSION = """
local held = redis.call('GET', KEYS[1])
if held and ARGV[3] ~= '1' then
  local ok, doc = pcall(cjson.decode, held)
  if ok and type(doc) == 'table' and doc.node ~= ARGV[2] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
return 1
"""

log = logging.getLogger("gateway.redis")

T = TypeVar("T")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class FanoutGap:
    """A time during which this node heard no fan-out: its subscribers may have missed events.

    The events are in the log; a client that resumes from its offsets gets them back.
    """

    started: float  # time.time() when the listener lost Redis
    ended: float  # time.time() when it was subscribed again
    error: str


# Keep one node's snapshot for the operator view, and list the node with its expiry in
# Redis's own clock (nodes' clocks may disagree). Nodes gone longer ago are dropped from
# the list, which expires with its last snapshot: both stay bounded by the live nodes.
# KEYS: the list, this node's snapshot; ARGV: node, snapshot, TTL in ms.
PUT_SNAPSHOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
"""


# -- the broker ------------------------------------------------------------------


class RedisBroker:
    """Logs, fan-out, dedup entries and session records in Redis, shared by every node.

    ``timeout`` bounds every Redis call (connect, read, pool checkout) and the wait
    for a pong on an idle fan-out connection, pinged every ``ping_interval``;
    ``backoff`` is the (first, largest) delay between reconnection attempts.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = 2.0,
        ping_interval: float = 5.0,
        backoff: tuple[float, float] = (0.1, 5.0),
        max_connections: int = 64,
    ) -> None:
        self.node = secrets.token_hex(6)
        self._settings = settings
        self._prefix = settings.redis_prefix
        self._channel = f"{self._prefix}:fanout"
        self._inbox = self._node_channel(self.node)
        self._on_command: OnCommand | None = None
        self._replies: dict[str, asyncio.Future[Any]] = {}
        self._commands: set[asyncio.Task[None]] = set()
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._backoff = backoff
        pool = BlockingConnectionPool.from_url(
            settings.broker,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            # redis-py 8 turns these on by default over RESP3, and with them on the pool
            # skips its check for dead idle connections: after a Redis restart the first
            # command on each pooled connection would fail.
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        self._redis: Redis = Redis.from_pool(pool)
        self._publish = self._redis.register_script(PUBLISH)
        self._replay = self._redis.register_script(REPLAY)
        self._position = self._redis.register_script(POSITION)
        self._save_session = self._redis.register_script(SAVE_SESSION)
        self._presence_write = self._redis.register_script(presence.WRITE)
        self._presence_read = self._redis.register_script(presence.READ)
        self._presence_beat = self._redis.register_script(presence.BEAT)
        self._presence_reap = self._redis.register_script(presence.REAP)
        # This node's presence id: a new one whenever it finds it was taken for dead (redis_presence).
        self._generations = itertools.count(1)
        self._presence_id = f"{self.node}.0"
        self._put_snapshot = self._redis.register_script(PUT_SNAPSHOT)
        self._on_publication: OnPublication | None = None
        self._listener: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        # Outages of the fan-out listener, for the hub to tell or resynchronise clients.
        self.missed_fanout_windows = 0
        self.last_fanout_gap: FanoutGap | None = None
        self.on_fanout_gap: Callable[[FanoutGap], None] | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self, on_publication: OnPublication, on_command: OnCommand, on_gap: OnGap) -> None:
        """Start the listener and wait (at most ``timeout``) for it to subscribe.

        If Redis is not there yet the gateway starts anyway, not ready, and the
        listener keeps trying: an orchestrator sees ``/readyz`` fail, not a crash loop.
        """
        self._on_publication = on_publication
        self._on_command = on_command
        self.on_fanout_gap = lambda gap: on_gap()
        self._listener = asyncio.create_task(self._listen(), name="redis-fanout-listener")
        try:
            async with asyncio.timeout(self._timeout):
                await self.wait_ready()
        except TimeoutError:
            log.warning("redis is not reachable yet; not ready, reconnecting in the background")

    async def close(self) -> None:
        self._on_publication = None
        for task in list(self._commands):
            task.cancel()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.wait([listener], timeout=self._timeout)
        self._set_ready(False)
        await self._redis.aclose()

    @property
    def ready(self) -> bool:
        """True while the listener is subscribed to the fan-out channel.

        Commands run on other connections: one can still fail while this is True (a
        Redis out of memory, or turned replica); it raises ``BrokerUnavailable`` then.
        """
        return self._up.is_set()

    async def wait_ready(self, ready: bool = True) -> None:
        """Return once ``ready`` has the given value; callers bound the wait."""
        await (self._up if ready else self._down).wait()

    def _set_ready(self, ready: bool) -> None:
        (self._up if ready else self._down).set()
        (self._down if ready else self._up).clear()

    # -- fan-out listener --------------------------------------------------------

    async def _listen(self) -> None:
        """Deliver fan-out messages until cancelled, reconnecting whenever Redis drops."""
        delay = self._backoff[0]
        lost_at: float | None = None  # set once a subscription that worked is lost
        error = ""
        while True:
            pubsub = self._redis.pubsub()
            try:
                await self._subscribe(pubsub)
                self._set_ready(True)
                delay = self._backoff[0]
                if lost_at is not None:
                    self._record_gap(lost_at, error)
                    lost_at = None
                await self._pump(pubsub)
            except Exception as exc:  # whatever it was, the listener must live on
                error = f"{type(exc).__name__}: {exc}"
                if self.ready and lost_at is None:
                    lost_at = time.time()
                self._set_ready(False)
                if isinstance(exc, (RedisError, OSError)):
                    log.warning("redis fan-out listener lost redis (%s); reconnecting in %.1f s", error, delay)
                else:
                    log.exception("redis fan-out listener failed; reconnecting in %.1f s", delay)
            finally:
                await self._discard(pubsub)
            # Jitter keeps a fleet of nodes from reconnecting in lockstep.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._backoff[1])

    async def _subscribe(self, pubsub: PubSub) -> None:
        """Subscribe and wait for Redis to confirm it, within ``timeout``."""
        async with asyncio.timeout(self._timeout):
            await pubsub.subscribe(self._channel, self._inbox)
            confirmed = 0
            while confirmed < 2:
                message = await pubsub.get_message(timeout=self._timeout)
                if message is not None and message["type"] == "subscribe":
                    confirmed += 1

    async def _pump(self, pubsub: PubSub) -> None:
        """Hand messages to the hub; ping when idle so a silently dead link is noticed too."""
        loop = asyncio.get_running_loop()
        pong_due: float | None = None
        while True:
            wait = self._ping_interval if pong_due is None else max(0.0, pong_due - loop.time())
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            if message is None:
                if pong_due is None:
                    await pubsub.ping()
                    pong_due = loop.time() + self._timeout
                elif loop.time() >= pong_due:
                    raise RedisTimeout(f"no pong from redis within {self._timeout} s")
                continue
            pong_due = None  # anything received proves the link alive
            if message["type"] == "message":
                if message["channel"] == self._inbox.encode():
                    self._command(message["data"])
                else:
                    self._deliver(message["data"])

    def _deliver(self, raw: bytes) -> None:
        try:
            publication = decode_fanout(raw)
        except (ValueError, KeyError, TypeError, GatewayError) as exc:  # GatewayError: a malformed binary marker
            log.error("dropped an unreadable fan-out message: %s", exc)
            return
        callback = self._on_publication
        if callback is None:
            return
        try:
            callback(publication)
        except Exception:
            log.exception("fan-out of %s/%s failed", publication.envelope.namespace, publication.envelope.room)

    # -- routed commands ------------------------------------------------------------

    def _node_channel(self, node: str) -> str:
        return f"{self._prefix}:node:{node}"

    def _command(self, raw: bytes) -> None:
        try:
            message = binary.loads(raw)  # a request's or a result's bytes travel as binary markers
            if message["t"] == "rep":
                future = self._replies.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
                return
            command = Command(message["op"], message["sid"], message["body"])
            reply_to, request_id = message["from"], message["id"]
        except (ValueError, KeyError, TypeError, GatewayError) as exc:  # GatewayError: a malformed binary marker
            log.error("dropped an unreadable routed command: %s", exc)
            return
        task = asyncio.create_task(self._run_command(command, reply_to, request_id))
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _run_command(self, command: Command, reply_to: str, request_id: str) -> None:
        reply: dict[str, Any] = {"t": "rep", "id": request_id}
        try:
            assert self._on_command is not None
            reply.update(ok=True, result=await self._on_command(command))
        except GatewayError as exc:
            reply.update(ok=False, error=exc.to_wire())
        except Exception as exc:  # the caller must get an answer, not a timeout
            log.exception("routed command %s failed", command.op)
            reply.update(ok=False, error=GatewayError(f"{type(exc).__name__}").to_wire())
        try:
            await self._redis.publish(self._node_channel(reply_to), binary.dumps(reply))
        except (RedisError, OSError) as exc:
            log.warning("could not reply to node %s: %s", reply_to, exc)

    async def route(self, node: str, command: Command, timeout: float) -> Any:
        request_id = secrets.token_hex(8)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        message = {"t": "req", "id": request_id, "from": self.node, "op": command.op,
                   "sid": command.sid, "body": command.body}
        try:
            heard = await self._call(
                f"route {command.op} to another node",
                self._redis.publish(self._node_channel(node), binary.dumps(message)),
            )
            if not heard:
                raise BrokerUnavailable("the node holding this session is gone; retry after it reconnects")
            async with asyncio.timeout(timeout):
                reply = await future
        except TimeoutError:
            raise BrokerUnavailable("the node holding this session did not answer in time") from None
        finally:
            self._replies.pop(request_id, None)
        if not reply["ok"]:
            raise error_from_wire(reply["error"])
        return reply["result"]

    def _record_gap(self, lost_at: float, error: str) -> None:
        gap = FanoutGap(lost_at, time.time(), error)
        self.missed_fanout_windows += 1
        self.last_fanout_gap = gap
        log.warning(
            "redis fan-out listener is back after %.1f s; events published meanwhile were "
            "not delivered live on this node (they are in the log)", gap.ended - gap.started,
        )
        if self.on_fanout_gap is not None:
            try:
                self.on_fanout_gap(gap)
            except Exception:
                log.exception("on_fanout_gap hook failed")

    async def _discard(self, pubsub: PubSub) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis-py 8
        except (RedisError, OSError, TimeoutError):
            pass  # the connection is being dropped anyway

    # -- commands -----------------------------------------------------------------

    async def _call(self, what: str, work: Awaitable[T]) -> T:
        try:
            return await work
        except (RedisError, OSError) as exc:
            # The cause stays in the log and the chain: a client needs no Redis address.
            log.warning("redis: could not %s: %s: %s", what, type(exc).__name__, exc)
            raise BrokerUnavailable(f"the broker could not {what}") from exc

    async def publish(self, draft: Envelope, include_sender: bool, dedup: Dedup | None = None) -> Envelope:
        keys, args = publish_call(self._prefix, self._settings, draft, include_sender, dedup)
        offset, ts = await self._call(
            f"log an event in {draft.namespace} {draft.room}", self._publish(keys=keys, args=args)
        )
        return Envelope(
            draft.namespace, draft.room, draft.event, draft.data, _text(offset),
            draft.sender, draft.client_event_id, int(ts), draft.echo,
        )

    async def publish_volatile(self, draft: Envelope, include_sender: bool) -> Envelope:
        """One ``PUBLISH`` on the fan-out channel, nothing in the stream (``ts`` is this node's clock)."""
        envelope = replace(draft, offset="", ts=int(time.time() * 1000), volatile=True)
        message = (
            b'{"offset":"","ts":' + str(envelope.ts).encode() + b',"includeSender":'
            + (b"true" if include_sender else b"false") + b',"record":' + encode_entry(envelope) + b"}"
        )
        await self._call(f"fan out an event in {draft.namespace} {draft.room}", self._redis.publish(self._channel, message))
        return envelope

    async def position(self, namespace: str, room: str) -> str:
        last = await self._call(
            f"read the position of {namespace} {room}",
            self._position(keys=[stream_key(self._prefix, namespace, room), meta_key(self._prefix, namespace, room)]),
        )
        return _text(last)

    async def replay(self, namespace: str, room: str, after: str) -> Replay:
        parse_offset(after)  # a malformed offset is the caller's bug, not Redis's
        s = self._settings
        reply: list[Any] = await self._call(
            f"replay {namespace} {room}",
            self._replay(
                keys=[stream_key(self._prefix, namespace, room), meta_key(self._prefix, namespace, room), since_key(self._prefix)],
                args=[after, s.log_max_length, ms(s.log_max_age), s.log_max_bytes],
            ),
        )
        now_ms = int(reply[1])
        since = _text(reply[-1])
        since_ms = int(since) if since else None
        if not reply[0]:
            ended = _text(reply[2])
            complete = judge_replay(
                after, None, now_ms, ended=parse_offset(ended) if ended else None,
                max_age_ms=ms(s.log_max_age), since_ms=since_ms,
            )
            return Replay([], complete)
        last, max_deleted, added, length, first, entries = reply[2:8]
        state = StreamState(
            parse_offset(_text(last)), parse_offset(_text(max_deleted)), int(added), int(length),
            parse_offset(_text(first)) if first else None,
        )
        complete = judge_replay(after, state, now_ms, since_ms=since_ms)
        events = []
        for entry_id, flat in entries:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            events.append(decode_entry(_text(entry_id), fields[b"ts"], fields[b"r"]))
        return Replay(events, complete)

    # -- presence (keys and scripts: redis_presence) -------------------------------------

    async def presence_write(self, changes: Mapping[PresenceKey, Member | None]) -> None:
        node, prefix = self._presence_id, self._prefix
        ttl = presence.ms_entries_ttl(self._settings)
        items = list(changes.items())
        for start in range(0, len(items), presence.WRITE_BATCH):  # a long script would hold Redis up
            keys: list[str] = [presence.node_key(prefix, node)]
            args: list[str | bytes | int] = [node, ttl]
            for (namespace, room, sid), member in items[start:start + presence.WRITE_BATCH]:
                keys += [presence.members_key(prefix, namespace, room), presence.data_key(prefix, namespace, room)]
                args += [
                    presence.encode_entry(namespace, room, sid), sid,
                    presence.encode_member(member, node) if member is not None else b"",
                ]
            await self._call("write presence", self._presence_write(keys=keys, args=args))

    async def presence_page(self, namespace: str, room: str, after: str | None, limit: int) -> Page:
        prefix = self._prefix
        keys = [presence.members_key(prefix, namespace, room), presence.data_key(prefix, namespace, room),
                presence.nodes_key(prefix)]
        reply: list[bytes] = await self._call(
            f"read the presence of {namespace} {room}",
            self._presence_read(keys=keys, args=[after or "", limit, limit * presence.READ_BUDGET]),
        )
        return Page([presence.decode_member(raw) for raw in reply[1:]], _text(reply[0]) or None)

    async def presence_beat(self) -> Beat:
        s, prefix = self._settings, self._prefix

        async def beat(node: str, register: bool) -> tuple[bool, list[str]]:
            alive, late = await self._call("renew presence", self._presence_beat(
                keys=[presence.nodes_key(prefix), presence.node_key(prefix, node)],
                args=[node, ms(s.presence_expiry), presence.ms_entries_ttl(s), "1" if register else "0"],
            ))
            return bool(alive), [_text(n) for n in late]

        alive, late = await beat(self._presence_id, False)
        if not alive:  # first beat, or taken for dead: a new id, and every member written again
            self._presence_id = f"{self.node}.{next(self._generations)}"
            _, late = await beat(self._presence_id, True)
        gone: list[tuple[str, str, Member]] = []
        for node in late:
            for _ in range(presence.REAP_BATCHES):
                done, *found = await self._call("take out a dead node's presence", self._presence_reap(
                    keys=[presence.nodes_key(prefix), presence.node_key(prefix, node)],
                    args=[node, prefix, presence.REAP_BATCH],
                ))
                for entry, member in zip(found[::2], found[1::2], strict=True):
                    namespace, room, _ = presence.decode_entry(entry)
                    gone.append((namespace, room, presence.decode_member(member)))
                if done:
                    break
        return Beat(rejoined=not alive, gone=tuple(gone))

    async def dedup_get(self, key: str) -> Any | None:
        raw = await self._call("read a dedup entry", self._redis.get(dedup_key(self._prefix, key)))
        return None if raw is None else binary.loads(raw)

    async def dedup_put(self, key: str, result: Any, ttl: float) -> None:
        ack = binary.dumps(result, option=orjson.OPT_NON_STR_KEYS)  # a handler's bytes too
        if len(ack) > self._settings.dedup_entry_max_bytes:
            return  # not kept: its TTL bounds how long, this how much
        await self._call("write a dedup entry", self._redis.set(dedup_key(self._prefix, key), ack, px=ms(ttl)))

    async def sweep(self) -> None:
        """Nothing to do: streams, their meta hashes and dedup entries expire in Redis."""

    def held_bytes(self) -> dict[str, int]:
        return {}  # logs and dedup entries live in Redis

    async def save_session(self, record: SessionRecord, ttl: float, *, take: bool = False) -> None:
        body = orjson.dumps(
            {"sid": record.sid, "namespace": record.namespace, "user": record.user,
             "rooms": record.rooms, "node": record.node, "key": record.key_hash}
        )
        await self._call("save a session", self._save_session(
            keys=[f"{self._prefix}:session:{record.sid}"], args=(body, record.node, int(take), ms(ttl))
        ))

    async def load_session(self, sid: str) -> SessionRecord | None:
        raw = await self._call("load a session", self._redis.get(f"{self._prefix}:session:{sid}"))
        if raw is None:
            return None
        body = orjson.loads(raw)
        return SessionRecord(
            body["sid"], body["namespace"], body["user"], dict(body["rooms"]), body.get("node", ""),
            body.get("key", ""),
        )

    async def drop_session(self, sid: str, *, expired: bool, ttl: float, key_hash: str = "") -> None:
        async def drop() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(f"{self._prefix}:session:{sid}")
                if expired:
                    pipe.set(f"{self._prefix}:expired:{sid}", key_hash.encode(), px=ms(ttl))
                await pipe.execute()

        await self._call("drop a session", drop())

    async def expired_session(self, sid: str) -> str | None:
        found = await self._call(
            "check a session tombstone", self._redis.get(f"{self._prefix}:expired:{sid}")
        )
        return None if found is None else _text(found)

    # -- the operator view ---------------------------------------------------------

    async def put_snapshot(self, snapshot: bytes, ttl: float) -> None:
        await self._call(
            "keep the node's snapshot",
            self._put_snapshot(
                keys=[f"{self._prefix}:overview-nodes", f"{self._prefix}:overview:{self.node}"],
                args=[self.node, snapshot, ms(ttl)],
            ),
        )

    async def snapshots(self) -> list[bytes]:
        """Every live node's snapshot: the listed nodes' keys that have not expired (a key's
        TTL is exact; the list only says which keys to read)."""
        nodes: list[Any] = await self._call(
            "list the nodes", self._redis.zrange(f"{self._prefix}:overview-nodes", 0, -1)
        )
        if not nodes:
            return []
        found: list[Any] = await self._call(
            "read the nodes' snapshots",
            self._redis.mget([f"{self._prefix}:overview:{_text(node)}" for node in nodes]),
        )
        return [snapshot for snapshot in found if isinstance(snapshot, bytes)]


__all__ = ["FanoutGap", "RedisBroker"]
