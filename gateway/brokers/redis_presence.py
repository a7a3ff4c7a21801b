"""Presence in Redis, without I/O: keys, Lua scripts and the member codec (``broker_redis`` runs them).

Keys::

    {prefix}:presence:{namespace}:{room}       sorted set of the room's member sids, all scored 0:
                                               ordered by sid, paged with ZRANGE BYLEX
    {prefix}:presence-data:{namespace}:{room}  hash: sid -> member JSON {"sid", "user", "claims", "node"}
    {prefix}:presence-nodes                    sorted set: presence node id -> until when it is alive
                                               (Redis's clock, ms)
    {prefix}:presence-node:{id}                set of the entries a node wrote, JSON [namespace, room,
                                               sid]: what to take out when it dies

A node renews its place in ``presence-nodes`` every ``presence_heartbeat`` seconds, to
``presence_expiry`` seconds ahead. An answer lists only members of nodes still within their
time, so a dead node's sessions leave every answer ``presence_expiry`` after its last beat;
the next live node's beat then takes them out (``REAP``, in batches, each taking its entries
from the set with ``SPOP``: two reapers never take the same one) and announces their leave.

A node's presence id is its broker node id plus a generation. A node that finds its time ran
out (Redis was out of its reach that long) registers under a new id and writes every member
again: a reaper still at work on the old id takes out only entries that still name the old
id, never the new ones. A member's entry names the node that wrote it last: a session that
moved to another node is not taken out by the old node's leave, nor by its death.

Entries whose node is unknown (taken out already, or never registered: a write that landed
after its node was reaped) are dropped by the next read that meets them. Scripts compute the
keys of rooms from entries they read, so this needs a single Redis, as the rest of the broker.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.brokers.redis_streams import LUA_LIB, ms
from gateway.core.presence import Member
from gateway.settings import Settings

WRITE_BATCH = 256  # changes per WRITE script
READ_BUDGET = 10  # a READ looks at most at this many pages' worth of entries (late ones skipped)
REAP_BATCH = 1000  # entries per REAP script ...
REAP_BATCHES = 10  # ... and REAP scripts per late node per heartbeat

# KEYS[1] the node's entry set, then two per change: the room's sorted set and hash.
# ARGV[1] node id, ARGV[2] the entry set's ttl (ms), then three per change: the entry
# (JSON [namespace, room, sid]), the sid, the member JSON ('' : it left).
WRITE = """
local node = ARGV[1]
for i = 0, (#KEYS - 1) / 2 - 1 do
  local zkey, hkey = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local entry, sid, member = ARGV[3 + 3 * i], ARGV[4 + 3 * i], ARGV[5 + 3 * i]
  if member ~= '' then
    redis.call('ZADD', zkey, 0, sid)
    redis.call('HSET', hkey, sid, member)
    redis.call('SADD', KEYS[1], entry)
  else
    local held = redis.call('HGET', hkey, sid)
    if held and cjson.decode(held)['node'] == node then
      redis.call('ZREM', zkey, sid)
      redis.call('HDEL', hkey, sid)
    end
    redis.call('SREM', KEYS[1], entry)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS[1] the room's sorted set, KEYS[2] its hash, KEYS[3] presence-nodes; ARGV[1] the cursor
# ('' : the first page), ARGV[2] the page size, ARGV[3] the most entries to look at.
# Returns {next cursor or '', member JSON...}. Members of late nodes are skipped (their
# reaper announces them); entries of unknown nodes are dropped.
READ = LUA_LIB + """
local now = nowms()
local limit, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
local nodes = {}
local function state(node)
  local known = nodes[node]
  if known == nil then
    local until_ms = redis.call('ZSCORE', KEYS[3], node)
    if not until_ms then known = 'gone' elseif tonumber(until_ms) >= now then known = 'live' else known = 'late' end
    nodes[node] = known
  end
  return known
end
local from = ARGV[1] == '' and '-' or '(' .. ARGV[1]
local out, sids = {}, {}
local looked = 0
local cursor = ''
while #out <= limit do
  local batch = redis.call('ZRANGE', KEYS[1], from, '+', 'BYLEX', 'LIMIT', 0, limit + 1 - #out)
  if #batch == 0 then break end
  for _, sid in ipairs(batch) do
    local member = redis.call('HGET', KEYS[2], sid)
    local s = member and state(cjson.decode(member)['node']) or 'gone'
    if s == 'live' then
      out[#out + 1] = member
      sids[#sids + 1] = sid
    elseif s == 'gone' then
      redis.call('ZREM', KEYS[1], sid)
      redis.call('HDEL', KEYS[2], sid)
    end
  end
  looked = looked + #batch
  from = '(' .. batch[#batch]
  if looked >= budget and #out <= limit then cursor = batch[#batch] break end
end
if #out > limit then
  out[#out] = nil
  cursor = sids[limit]
end
table.insert(out, 1, cursor)
return out
"""

# KEYS[1] presence-nodes, KEYS[2] the node's entry set; ARGV[1] node id, ARGV[2] expiry (ms),
# ARGV[3] the entry set's ttl (ms), ARGV[4] '1' to register (else only renew a node still in
# its time). Returns {1 if alive (renewed or registered) else 0, the late nodes (at most 8)}.
BEAT = LUA_LIB + """
local now = nowms()
local until_ms = redis.call('ZSCORE', KEYS[1], ARGV[1])
local alive = ARGV[4] == '1' or (until_ms and tonumber(until_ms) >= now)
if alive then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return {alive and 1 or 0, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, 8)}
"""

# KEYS[1] presence-nodes, KEYS[2] the late node's entry set; ARGV[1] its id, ARGV[2] the key
# prefix, ARGV[3] the batch size. Takes out up to a batch of its members (only entries that
# still name it), and the node once none is left. Returns {1 if done else 0, entry, member, ...}.
REAP = LUA_LIB + """
local now = nowms()
local until_ms = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not until_ms or tonumber(until_ms) >= now then return {1} end
local out = {0}
for _, entry in ipairs(redis.call('SPOP', KEYS[2], tonumber(ARGV[3]))) do
  local e = cjson.decode(entry)
  local base = e[1] .. ':' .. e[2]
  local hkey = ARGV[2] .. ':presence-data:' .. base
  local held = redis.call('HGET', hkey, e[3])
  if held and cjson.decode(held)['node'] == ARGV[1] then
    redis.call('ZREM', ARGV[2] .. ':presence:' .. base, e[3])
    redis.call('HDEL', hkey, e[3])
    out[#out + 1] = entry
    out[#out + 1] = held
  end
end
if redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  out[1] = 1
end
return out
"""


def members_key(prefix: str, namespace: str, room: str) -> str:
    return f"{prefix}:presence:{namespace}:{room}"


def data_key(prefix: str, namespace: str, room: str) -> str:
    return f"{prefix}:presence-data:{namespace}:{room}"


def nodes_key(prefix: str) -> str:
    return f"{prefix}:presence-nodes"


def node_key(prefix: str, node: str) -> str:
    return f"{prefix}:presence-node:{node}"


def ms_entries_ttl(settings: Settings) -> int:
    """How long a node's entry set outlives its last beat: time for another node to reap it."""
    return ms(settings.presence_expiry * 10)


def encode_entry(namespace: str, room: str, sid: str) -> bytes:
    return orjson.dumps([namespace, room, sid])


def decode_entry(raw: bytes) -> tuple[str, str, str]:
    namespace, room, sid = orjson.loads(raw)
    return str(namespace), str(room), str(sid)


def encode_member(member: Member, node: str) -> bytes:
    return orjson.dumps({**member.to_wire(), "node": node})


def decode_member(raw: bytes) -> Member:
    """A member entry; raises ValueError/KeyError/TypeError if it is not one."""
    body: dict[str, Any] = orjson.loads(raw)
    claims = body.get("claims") or {}
    if not isinstance(body["sid"], str) or not isinstance(claims, dict):
        raise TypeError("a presence entry needs a sid and claims")
    return Member(body["sid"], body.get("user"), claims)


__all__ = [
    "BEAT", "READ", "READ_BUDGET", "REAP", "REAP_BATCH", "REAP_BATCHES", "WRITE", "WRITE_BATCH", "data_key", "decode_entry", "decode_member", "encode_entry",
    "encode_member", "members_key", "ms_entries_ttl", "node_key", "nodes_key",
]
