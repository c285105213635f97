"""The Lua scripts: each one is a single atomic step on the Redis side.

PURE text.  The publish step follows Centrifuge's
``broker_history_add_stream.lua``: in one script, take the room's next offset
from its meta hash (which also holds the epoch, created on first use and lost
with the data, so a changed epoch tells readers that Redis forgot), append
to the room's Stream capped with MAXLEN, and PUBLISH.  Ours adds one thing:
each node numbers its batches, and a batch whose number is not above the last
one stored for that node is skipped, so a publish retried after a lost reply
is not stored or delivered twice.  A first attempt needs no check (its
number is new), so only a retry reads the field: the common case costs
HINCRBY, HGET, HSET, XADD, SMEMBERS and one PUBLISH per other listening
node (not to the publisher: its own entries would only wake it to be
skipped; the reply tells it the offset).  The Stream is capped with
``MAXLEN ~`` (whole nodes trimmed at once, far cheaper than exact), so it
holds at least ``stream_size`` entries.

That number lives in the meta hash as ``n:<node>``, one field per node that
published in the room.  Node ids are per process, so the fields are removed
when a node stops (by itself) or dies (by the node that reaps it); see
``presence``.  A node reaped while it was only cut off may come back and
retry a batch whose field is gone: it marks such a batch as a retry, and the
script then looks for the node's newest entry in the Stream instead.
"""

from __future__ import annotations

__all__ = [
    "CLAIM_REFRESH",
    "DECIDE_ONCE",
    "HEARTBEAT",
    "LEAVE",
    "LIVE_NODES",
    "PRIVATE",
    "PUBLISH",
    "REAP",
    "RECORD",
    "RELEASE",
    "SERVER_BAN",
]

#: KEYS: meta, stream, listeners.  ARGV: channel prefix (a listening node's channel is the
#: prefix and its id), header, payload, maxlen, new epoch, node, seq, retry ("1" if this
#: batch may have been stored already: its first attempt failed), and optionally the
#: publish command (SPUBLISH on a Redis Cluster >= 7; PUBLISH by default).  The message
#: goes to every listening node but the publisher, which learns the offset from the reply.
#: Returns {offset, epoch, foreign entries removed}; offset 0 means "already published".
PUBLISH = """
local field = 'n:' .. ARGV[6]
if ARGV[8] == '1' then
  local last = tonumber(redis.call('HGET', KEYS[1], field) or '0')
  if last == 0 then
    -- The field was removed (its node was reaped while cut off): the node's
    -- newest entry in the Stream tells what was stored.  Its entries are in
    -- sequence order, each header starts '<node> <seq> '.
    local prefix = ARGV[6] .. ' '
    local start = '+'
    while last == 0 do
      local page = redis.call('XREVRANGE', KEYS[2], start, '-', 'COUNT', 100)
      for _, entry in ipairs(page) do
        local fields = entry[2]
        for i = 1, #fields - 1, 2 do
          if fields[i] == 'h' and string.sub(fields[i + 1], 1, #prefix) == prefix then
            last = tonumber(string.match(fields[i + 1], '^%S+ (%d+) ')) or -1
          end
        end
        if last ~= 0 then break end
      end
      if last ~= 0 or #page < 100 then break end
      start = '(' .. page[#page][1]
    end
    if last > 0 then
      redis.call('HSET', KEYS[1], field, last)
    end
  end
  if tonumber(ARGV[7]) <= last then
    return {0, '', 0}
  end
end
local offset = redis.call('HINCRBY', KEYS[1], 's', 1)
local epoch = redis.call('HGET', KEYS[1], 'e')
if epoch then
  redis.call('HSET', KEYS[1], field, ARGV[7])
else
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'e', epoch, field, ARGV[7])
  redis.call('DEL', KEYS[2])  -- entries of a lost epoch (the meta hash was evicted) mean nothing now
end
local foreign = 0
local added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], offset, 'h', ARGV[2], 'd', ARGV[3])
if type(added) == 'table' and added.err then
  -- Entries past the last offset were written by another program (XADD with
  -- '*'): remove them and put the Stream's last ID back, or no XADD of ours
  -- would ever succeed again.
  local start = (offset - 1) .. '-1'
  while true do
    local page = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', 100)
    for _, entry in ipairs(page) do
      redis.call('XDEL', KEYS[2], entry[1])
    end
    foreign = foreign + #page
    if #page < 100 then break end
  end
  redis.call('XSETID', KEYS[2], (offset - 1) .. '-0')
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], offset, 'h', ARGV[2], 'd', ARGV[3])
end
local message = 'gc1 ' .. epoch .. ' ' .. offset .. ' ' .. ARGV[2] .. '\\n' .. ARGV[3]
local publish = ARGV[9] or 'PUBLISH'
for _, listener in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if listener ~= ARGV[6] then
    redis.call(publish, ARGV[1] .. listener, message)
  end
end
return {offset, epoch, foreign}
"""

#: KEYS: nick.  ARGV: node, ttl seconds.  1 kept, 2 taken again (it had expired), 0 lost.
CLAIM_REFRESH = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 2
end
return 0
"""

#: KEYS: nick.  ARGV: node.  Deletes the key only if this node holds it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: KEYS: nodes, beats, reaping.  ARGV: node, ttl ms, calm ms.  Uses the Redis clock, so
#: nodes' clocks need not agree.  Returns {1 if the node was not listed (new, or
#: reaped), dead nodes...}.  Nobody is taken for dead after a stall:
#: - when no node at all has beaten for half a ttl (each beats every third of
#:   one), Redis itself (or every node) was held up, and expiries may have
#:   passed while the nodes were alive; the first beat after it starts a calm
#:   of ``calm`` ms (a ttl plus the nodes' reconnect backoff) during which
#:   nobody is reaped, so every live node has beaten again before anyone is
#:   judged;
#: - a node whose own expiry had passed (its own link was cut) cannot tell a
#:   dead node from one held up as it was, so it reaps nobody on that beat.
#: The truly dead are reaped a little later, once.
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '0')
local calm = tonumber(redis.call('HGET', KEYS[2], 'calm') or '0')
if last > 0 and now - last > ttl / 2 then
  calm = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[2], 'calm', calm)
end
redis.call('HSET', KEYS[2], 'last', now)
local mine = redis.call('ZSCORE', KEYS[1], ARGV[1])
local added = redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if added == 1 then
  redis.call('SREM', KEYS[3], ARGV[1])  -- back: nobody is to go on reaping it
end
local result = {added}
if now >= calm and mine and tonumber(mine) > now then
  for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
    table.insert(result, node)
  end
end
return result
"""

#: KEYS: nodes, reaping.  ARGV: node.  Moves ``node`` from the live set to the
#: ones being reaped, only if its expiry has still passed (it may have come
#: back since a heartbeat listed it); 1 if moved.
REAP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expiry and tonumber(expiry) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

#: KEYS: nodes.  The nodes whose heartbeat has not expired.
LIVE_NODES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""

#: KEYS: nick.  ARGV: node channel prefix, message.  Publishes the message on
#: the channel of the node holding the nick; returns that node, or nil if nobody holds it.
PRIVATE = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  return false
end
redis.call('PUBLISH', ARGV[1] .. holder, ARGV[2])
return holder
"""

#: KEYS: a room's meta hash.  ARGV: field, value.  Sets the field unless it is set
#: (the first node to ask wins), returns the value it holds.  Room-scoped, so it
#: runs on the room's master of a Redis Cluster; more of a room's state decided
#: once (say, its creator) can join it in one step.
DECIDE_ONCE = """
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
"""

#: KEYS: a room's rules hash, its who hash.  ARGV: pairs of field and value, a
#: value of ``-`` removing its field (``core.records``'s fields never hold ``-``).
#: One decision's changes land together; none once the room is empty (its last
#: user took its rules: a change that arrives after that is of a room gone).
RECORD = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
for i = 1, #ARGV - 1, 2 do
  if ARGV[i + 1] == '-' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""

#: KEYS: a room's who hash, rules hash, meta hash.  ARGV: folded nick, value.
#: Deletes the user's entry only if it is ours, with their operator status and
#: voice; the room's last user takes its rules and its creator with them (as
#: one server forgets an empty room).  1 if the entry was removed.
LEAVE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], 'op:' .. ARGV[1], 'vo:' .. ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('HDEL', KEYS[3], 'x:creator')
end
return 1
"""

#: KEYS: the server bans hash, the nodes ZSET.  ARGV: ``+`` or ``-``, mask,
#: ban (for ``+``), node channel prefix, this node, message.  Adds or lifts a
#: server ban and tells every other live node (on its own channel) to reload them.
SERVER_BAN = """
if ARGV[1] == '+' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[2])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')) do
  if node ~= ARGV[5] then
    redis.call('PUBLISH', ARGV[4] .. node, ARGV[6])
  end
end
return 1
"""
