"""The room log's shape in Redis Streams, without I/O: Lua scripts, entry codec, gap rule.

``broker_redis`` runs these; they are kept apart so the rule that decides
``Replay.complete`` reads (and is tested) on its own, without Redis or an event loop.

An entry of ``{prefix}:log:{namespace}:{room}`` has two fields: ``ts`` (Redis's
clock, ms) and ``r`` (the envelope's record without offset and ts, JSON); its id is
the offset. A fan-out message is ``{"offset", "ts", "includeSender", "record"}``. Payload
``bytes`` are binary marker objects in both (``gateway/wire/binary.py``).

Bounded in bytes and in time (issue 12). Beside each stream, a hash
``{prefix}:logmeta:{namespace}:{room}`` keeps ``bytes`` (the sum of the ``r`` fields
the stream holds: the per-room byte bound is exact, kept up as entries are added and
trimmed) and ``last`` (the last id issued). Every append sets the stream to expire
``log_max_age`` after it, when its last entry would have aged out anyway, and the
hash ``recovery_window + ping_timeout`` later: so an idle room leaves nothing in
Redis but that small hash, for as long as a session could resume from before it, and
then nothing. ``{prefix}:logs-since`` (no TTL) holds when this Redis data set issued
its first offset: an offset from before it belongs to data Redis lost.

The byte count drifts only if something else writes or trims a stream (it is then
clamped at 0), or if the hash is evicted without its stream: run Redis with
``maxmemory-policy noeviction`` (an evicted stream would read as expired, not lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.brokers.base import Dedup, Publication
from gateway.settings import Settings
from gateway.wire import binary
from gateway.wire.envelope import Envelope
from gateway.wire.errors import OffsetFromFuture
from gateway.wire.offsets import parse_offset

Offset = tuple[int, int]

# Shared by every script: Redis's clock, id comparison, XINFO as a table, the trim.
LUA_LIB = """
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function id_lt(a, b)
  local am, as = split(a)
  local bm, bs = split(b)
  return am < bm or (am == bm and as < bs)
end

local function info(key)
  local raw = redis.call('XINFO', 'STREAM', key)
  local out = {}
  for i = 1, #raw, 2 do out[raw[i]] = raw[i + 1] end
  return out
end

local function entry_bytes(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'r' then return #fields[i + 1] end
  end
  return 0
end

-- Drop the oldest entries past the length, age or byte bound with one XTRIM, and
-- record the newest one dropped as max-deleted-entry-id: Redis 7.0 records it for
-- XDEL only, and the replay gap rule needs it for trimming. The byte bound never
-- drops the newest entry. Entries are read only when some bound is exceeded, and
-- then from the oldest, 8 at a time, until the first one that stays.
local function trim(key, meta, last, max_length, horizon, max_bytes)
  local length = redis.call('XLEN', key)
  local held = tonumber(redis.call('HGET', meta, 'bytes') or '0')
  local aged = false
  if horizon > 0 then
    local newest = redis.call('XREVRANGE', key, '(' .. string.format('%d', horizon) .. '-0', '-', 'COUNT', 1)
    if newest[1] then aged = newest[1][1] end
  end
  if length <= max_length and held <= max_bytes and not aged then return end
  local gone = false
  local from = '-'
  local walking = true
  while walking do
    local batch = redis.call('XRANGE', key, from, '+', 'COUNT', 8)
    if #batch == 0 then break end
    for _, entry in ipairs(batch) do
      local id = entry[1]
      if length > max_length or (aged and not id_lt(aged, id)) or (held > max_bytes and length > 1) then
        gone = id
        length = length - 1
        held = held - entry_bytes(entry[2])
      else
        walking = false
        break
      end
    end
    from = '(' .. batch[#batch][1]
  end
  if gone then
    local ms, seq = split(gone)
    redis.call('XTRIM', key, 'MINID', '=', string.format('%d-%d', ms, seq + 1))
    redis.call('XSETID', key, last, 'MAXDELETEDID', gone)
    redis.call('HSET', meta, 'bytes', math.max(held, 0))
  end
end
"""

# KEYS[1] stream, KEYS[2] dedup key (or ""), KEYS[3] the room's meta hash, KEYS[4] the
# data set's logs-since marker; ARGV channel, max_length, max_age_ms, entry,
# include_sender ("1"/"0"), dedup ttl ms, room as a JSON string, max_bytes, meta ttl ms.
# The fan-out message and the dedup entry are assembled here because only here is the
# id known; the pieces are already JSON, so concatenation yields JSON. Logging and the
# dedup entry are one step: a retransmission after a crash finds the ack instead of
# logging the event twice.
#
# A stream that does not exist is created. If the room had one before (its meta hash
# says where it ended): one that expired (idle for max_age) is carried on, its last id
# recorded as trimmed, so a resume from before it is a gap and one from its end is not;
# one that vanished sooner was lost by Redis, and everything before the new first entry
# is a gap. (ENTRIESADDED 2 tells the gap rule this stream has a past.)
PUBLISH = LUA_LIB + """
local now = nowms()
local ts = string.format('%d', now)
local max_age = tonumber(ARGV[3])
local id_arg = '*'
local floor = false
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[4], ts, 'NX')
  local ended = redis.call('HGET', KEYS[3], 'last')
  if ended then
    local ms, seq = split(ended)
    if now >= ms + max_age then floor = ended else floor = true end
    if now <= ms then id_arg = string.format('%d-%d', ms, seq + 1) end  -- a clock that went back
  end
  redis.call('HSET', KEYS[3], 'bytes', 0)
end
local id = redis.call('XADD', KEYS[1], id_arg, 'ts', ts, 'r', ARGV[4])
if floor == true then floor = id end
if floor then redis.call('XSETID', KEYS[1], id, 'ENTRIESADDED', 2, 'MAXDELETEDID', floor) end
redis.call('HINCRBY', KEYS[3], 'bytes', #ARGV[4])
redis.call('HSET', KEYS[3], 'last', id)
trim(KEYS[1], KEYS[3], id, tonumber(ARGV[2]), now - max_age, tonumber(ARGV[8]))
redis.call('PEXPIRE', KEYS[1], max_age)
redis.call('PEXPIRE', KEYS[3], ARGV[9])
if KEYS[2] ~= '' then
  redis.call('SET', KEYS[2], '{"result":{"room":' .. ARGV[7] .. ',"offset":"' .. id .. '"}}', 'PX', ARGV[6])
end
redis.call('PUBLISH', ARGV[1], '{"offset":"' .. id .. '","ts":' .. ts .. ',"includeSender":'
  .. (ARGV[5] == '1' and 'true' or 'false') .. ',"record":' .. ARGV[4] .. '}')
return {id, ts}
"""

# KEYS[1] stream, KEYS[2] meta hash, KEYS[3] logs-since marker; ARGV after, max_length,
# max_age_ms, max_bytes. Trims first (as the memory log does on replay), then reads the
# stream's state and the entries after ``after`` in one atomic step, so the gap verdict
# matches the entries returned. Without a stream: where it ended (if known) instead.
REPLAY = LUA_LIB + """
local now = nowms()
local ts = string.format('%d', now)
local since = redis.call('GET', KEYS[3]) or ''
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, ts, redis.call('HGET', KEYS[2], 'last') or '', since}
end
trim(KEYS[1], KEYS[2], info(KEYS[1])['last-generated-id'], tonumber(ARGV[2]), now - tonumber(ARGV[3]),
  tonumber(ARGV[4]))
local s = info(KEYS[1])
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
-- An offset Redis cannot parse (past 64 bits) is judged by the caller; no entries follow it.
local events = redis.pcall('XRANGE', KEYS[1], '(' .. ARGV[1], '+')
if events.err then events = {} end
return {1, ts, s['last-generated-id'], s['max-deleted-entry-id'], s['entries-added'], s['length'],
  first[1] and first[1][1] or '', events, since}
"""

# KEYS[1] stream, KEYS[2] meta hash: the room's last id, even after its stream expired.
POSITION = LUA_LIB + """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('HGET', KEYS[2], 'last') or '0-0' end
return info(KEYS[1])['last-generated-id']
"""


def stream_key(prefix: str, namespace: str, room: str) -> str:
    return f"{prefix}:log:{namespace}:{room}"


def meta_key(prefix: str, namespace: str, room: str) -> str:
    return f"{prefix}:logmeta:{namespace}:{room}"


def since_key(prefix: str) -> str:
    return f"{prefix}:logs-since"


def dedup_key(prefix: str, key: str) -> str:
    return f"{prefix}:dedup:{key}"


def ms(seconds: float) -> int:
    """A duration as Redis's milliseconds, never 0 (an expiry of 0 would be refused)."""
    return max(1, round(seconds * 1000))


def publish_call(
    prefix: str, settings: Settings, draft: Envelope, include_sender: bool, dedup: Dedup | None = None
) -> tuple[list[str], list[Any]]:
    """The ``PUBLISH`` script's keys and arguments (the broker and the ``Emitter`` both run it)."""
    s = settings
    keys = [
        stream_key(prefix, draft.namespace, draft.room),
        dedup_key(prefix, dedup.key) if dedup else "",
        meta_key(prefix, draft.namespace, draft.room),
        since_key(prefix),
    ]
    args = [
        f"{prefix}:fanout", s.log_max_length, ms(s.log_max_age), encode_entry(draft),
        "1" if include_sender else "0", ms(dedup.ttl) if dedup else 0, orjson.dumps(draft.room),
        s.log_max_bytes, ms(s.log_max_age + s.ping_timeout + s.recovery_window),
    ]
    return keys, args


@dataclass(frozen=True, slots=True)
class StreamState:
    """What ``XINFO STREAM`` says about a room's stream, read atomically with a replay."""

    last: Offset  # last-generated-id: the room's position
    max_deleted: Offset  # newest entry ever trimmed (kept up to date by the trim script)
    entries_added: int  # entries ever added to this stream
    length: int  # entries it holds now
    first: Offset | None  # oldest entry it holds, None when empty


def judge_replay(
    after: str, state: StreamState | None, now_ms: int, *,
    ended: Offset | None = None, max_age_ms: int = 0, since_ms: int | None = None,
) -> bool:
    """Whether the log still holds every event after ``after`` (``Replay.complete``).

    ``state`` is None when the stream does not exist; ``now_ms`` is Redis's clock,
    the one stream ids come from. Raises ``OffsetFromFuture`` for an offset Redis
    cannot have issued yet. ``ended`` is the room's last id from its meta hash (when
    there is no stream), ``max_age_ms`` the log's age bound (a stream expires that
    long after its last append), ``since_ms`` when this data set issued its first
    offset (``logs-since``; None: unknown).

    The rule: complete only if the log *proves* nothing after ``after`` is missing.

    * No stream, and its meta hash says it ended at least ``max_age`` ago: it expired,
      idle. ``after`` at its last id is complete, before it a gap (its entries aged out).
    * No stream and no meta hash, ``after`` issued by this data set (``>= since``): the
      stream and then its hash expired, longer ago than a session lives. A session that
      missed one of its events had to resume while they were there, and was told then:
      complete.
    * ``after`` beyond the stream's last id (or any offset but ``0-0`` when there is
      no stream, otherwise): if its time is still ahead of Redis's clock nobody issued
      it, so ``OffsetFromFuture``; otherwise it was issued and Redis has lost it since
      (a restart without persistence, a failover), so a gap.
    * ``after`` below ``max-deleted-entry-id``: a trimmed entry followed it, a gap.
      (The trim script records that id; Redis 7.0 itself only records it for XDEL.)
      ``after`` equal to the newest trimmed entry is complete: nothing after it went.
      A stream created after an expired one of the same room records that one's last
      id this way; after a lost one, its own first id.
    * Nothing was ever trimmed, yet ``after`` (not ``0-0``) precedes the stream's
      first entry: the stream was created after ``after`` was issued, so ``after``
      belongs to an earlier copy of the room: one Redis lost (a gap), unless it was
      issued by this data set (then that copy expired, as above: complete).
    * Entries were removed that no trim recorded (``entries-added > length`` with
      ``max-deleted`` at ``0-0``: trimmed by hand): only positions from the first
      entry held on (or from the last id, when it holds none) are provably complete.

    Not detected: ``0-0`` (a room without a stream when the client joined) after
    Redis lost a stream created since then, as that copy left no trace to compare
    with; entries removed by hand after the script recorded a trim (the rule
    assumes only the gateway trims its streams); and a stream evicted by a
    ``maxmemory-policy`` with its meta hash (it reads as expired).
    """
    position = parse_offset(after)
    if state is None and position != (0, 0) and position[0] <= now_ms:
        if ended is not None and now_ms >= ended[0] + max_age_ms and position <= ended:
            return position == ended
        if ended is None and since_ms is not None and position[0] >= since_ms:
            return True
    if state is None or position > state.last:
        if state is None and position == (0, 0):
            return True
        if position[0] > now_ms:
            last = "none" if state is None else "{}-{}".format(*state.last)
            raise OffsetFromFuture(f"offset {after} is beyond the room's last offset ({last})", offset=after)
        return False
    if position < state.max_deleted:
        return False
    if state.entries_added > state.length and state.max_deleted == (0, 0):
        return position >= (state.first or state.last)
    if state.entries_added == state.length and state.first is not None:
        return (
            position == (0, 0) or position >= state.first
            or (since_ms is not None and position[0] >= since_ms)
        )
    return True


def encode_entry(envelope: Envelope) -> bytes:
    """The stream entry body: the envelope's record without offset and ts (the stream has those)."""
    record = envelope.to_record()
    del record["offset"], record["ts"]
    return binary.dumps(record)


def decode_entry(offset: str, ts: int | bytes, entry: bytes) -> Envelope:
    record = binary.loads(entry)
    record["offset"] = offset
    record["ts"] = int(ts)
    return Envelope.from_record(record)


def decode_fanout(raw: bytes) -> Publication:
    """A fan-out message: ``{"offset", "ts", "includeSender", "record"}``; raises ValueError/KeyError."""
    message = binary.loads(raw)
    record = message["record"]
    record["offset"] = message["offset"]
    record["ts"] = message["ts"]
    return Publication(Envelope.from_record(record), bool(message["includeSender"]))


__all__ = [
    "LUA_LIB", "POSITION", "PUBLISH", "REPLAY", "StreamState",
    "decode_entry", "decode_fanout", "dedup_key", "encode_entry", "judge_replay",
    "meta_key", "ms", "publish_call", "since_key", "stream_key",
]
