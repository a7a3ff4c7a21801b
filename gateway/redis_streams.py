"""The room log's shape in Redis Streams, without I/O: Lua scripts, entry codec, gap rule.

``broker_redis`` runs these; they are kept apart so the rule that decides
``Replay.complete`` reads (and is tested) on its own, without Redis or an event loop.

An entry of ``{prefix}:log:{namespace}:{room}`` has two fields: ``ts`` (Redis's
clock, ms) and ``r`` (the envelope's record without offset and ts, JSON); its id is
the offset. A fan-out message is ``{"offset", "ts", "includeSender", "record"}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from .broker import Publication
from .envelope import Envelope
from .errors import OffsetFromFuture
from .offsets import parse_offset

Offset = tuple[int, int]

# Shared by every script: Redis's clock, id comparison, XINFO as a table, the trim.
LUA_LIB = """
local function now_ms()
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

-- Drop the oldest entries past the length or the age bound with one XTRIM, and
-- record the newest one dropped as max-deleted-entry-id: Redis 7.0 records it for
-- XDEL only, and the replay gap rule needs it for trimming.
local function trim(key, last, max_length, horizon)
  local gone = false
  local excess = redis.call('XLEN', key) - max_length
  if excess > 0 then
    local head = redis.call('XRANGE', key, '-', '+', 'COUNT', excess)
    gone = head[#head][1]
  end
  if horizon > 0 then
    local aged = redis.call('XREVRANGE', key, '(' .. string.format('%d', horizon) .. '-0', '-', 'COUNT', 1)
    if aged[1] and (not gone or id_lt(gone, aged[1][1])) then gone = aged[1][1] end
  end
  if gone then
    local ms, seq = split(gone)
    redis.call('XTRIM', key, 'MINID', '=', string.format('%d-%d', ms, seq + 1))
    redis.call('XSETID', key, last, 'MAXDELETEDID', gone)
  end
end
"""

# KEYS[1] stream, KEYS[2] dedup key (or ""); ARGV channel, max_length, max_age_ms, entry,
# include_sender ("1"/"0"), dedup ttl ms, room as a JSON string. The fan-out message and
# the dedup entry are assembled here because only here is the id known; the pieces are
# already JSON, so concatenation yields JSON. Logging and the dedup entry are one step:
# a retransmission after a crash finds the ack instead of logging the event twice.
PUBLISH = LUA_LIB + """
local now = now_ms()
local ts = string.format('%d', now)
local id = redis.call('XADD', KEYS[1], '*', 'ts', ts, 'r', ARGV[4])
trim(KEYS[1], id, tonumber(ARGV[2]), now - tonumber(ARGV[3]))
if KEYS[2] ~= '' then
  redis.call('SET', KEYS[2], '{"result":{"room":' .. ARGV[7] .. ',"offset":"' .. id .. '"}}', 'PX', ARGV[6])
end
redis.call('PUBLISH', ARGV[1], '{"offset":"' .. id .. '","ts":' .. ts .. ',"includeSender":'
  .. (ARGV[5] == '1' and 'true' or 'false') .. ',"record":' .. ARGV[4] .. '}')
return {id, ts}
"""

# KEYS[1] stream; ARGV after, max_length, max_age_ms. Trims by age first (as the
# memory log does on replay), then reads the stream's state and the entries after
# ``after`` in one atomic step, so the gap verdict matches the entries returned.
REPLAY = LUA_LIB + """
local now = now_ms()
local ts = string.format('%d', now)
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ts} end
trim(KEYS[1], info(KEYS[1])['last-generated-id'], tonumber(ARGV[2]), now - tonumber(ARGV[3]))
local s = info(KEYS[1])
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
-- An offset Redis cannot parse (past 64 bits) is judged by the caller; no entries follow it.
local events = redis.pcall('XRANGE', KEYS[1], '(' .. ARGV[1], '+')
if events.err then events = {} end
return {1, ts, s['last-generated-id'], s['max-deleted-entry-id'], s['entries-added'], s['length'],
  first[1] and first[1][1] or '', events}
"""

POSITION = LUA_LIB + """
if redis.call('EXISTS', KEYS[1]) == 0 then return '0-0' end
return info(KEYS[1])['last-generated-id']
"""



@dataclass(frozen=True, slots=True)
class StreamState:
    """What ``XINFO STREAM`` says about a room's stream, read atomically with a replay."""

    last: Offset  # last-generated-id: the room's position
    max_deleted: Offset  # newest entry ever trimmed (kept up to date by the trim script)
    entries_added: int  # entries ever added to this stream
    length: int  # entries it holds now
    first: Offset | None  # oldest entry it holds, None when empty


def judge_replay(after: str, state: StreamState | None, now_ms: int) -> bool:
    """Whether the log still holds every event after ``after`` (``Replay.complete``).

    ``state`` is None when the stream does not exist; ``now_ms`` is Redis's clock,
    the one stream ids come from. Raises ``OffsetFromFuture`` for an offset Redis
    cannot have issued yet.

    The rule: complete only if the log *proves* nothing after ``after`` is missing.

    * ``after`` beyond the stream's last id (or any offset but ``0-0`` when there is
      no stream): if its time is still ahead of Redis's clock nobody issued it, so
      ``OffsetFromFuture``; otherwise it was issued and Redis has lost it since (a
      restart without persistence, a failover), so a gap.
    * ``after`` below ``max-deleted-entry-id``: a trimmed entry followed it, a gap.
      (The trim script records that id; Redis 7.0 itself only records it for XDEL.)
      ``after`` equal to the newest trimmed entry is complete: nothing after it went.
    * Nothing was ever trimmed, yet ``after`` (not ``0-0``) precedes the stream's
      first entry: the stream was created after ``after`` was issued, so ``after``
      belongs to a copy of the room Redis lost, a gap. (When something was trimmed,
      ``after >= max-deleted`` already places it inside this stream's history.)
    * Entries were removed that no trim recorded (``entries-added > length`` with
      ``max-deleted`` at ``0-0``: trimmed by hand): only positions from the first
      entry held on (or from the last id, when it holds none) are provably complete.

    Not detected: ``0-0`` (a room without a stream when the client joined) after
    Redis lost a stream created since then, as that copy left no trace to compare
    with; and entries removed by hand after the script recorded a trim (the rule
    assumes only the gateway trims its streams).
    """
    position = parse_offset(after)
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
        return position == (0, 0) or position >= state.first
    return True


def encode_entry(envelope: Envelope) -> bytes:
    """The stream entry body: the envelope's record without offset and ts (the stream has those)."""
    record = envelope.to_record()
    del record["offset"], record["ts"]
    return orjson.dumps(record)


def decode_entry(offset: str, ts: int | bytes, entry: bytes) -> Envelope:
    record = orjson.loads(entry)
    record["offset"] = offset
    record["ts"] = int(ts)
    return Envelope.from_record(record)


def decode_fanout(raw: bytes) -> Publication:
    """A fan-out message: ``{"offset", "ts", "includeSender", "record"}``; raises ValueError/KeyError."""
    message = orjson.loads(raw)
    record = message["record"]
    record["offset"] = message["offset"]
    record["ts"] = message["ts"]
    return Publication(Envelope.from_record(record), bool(message["includeSender"]))


__all__ = [
    "LUA_LIB", "POSITION", "PUBLISH", "REPLAY", "StreamState",
    "decode_entry", "decode_fanout", "encode_entry", "judge_replay",
]
