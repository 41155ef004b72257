"""Lua scripts of the Redis broker; each touches the keys of ONE channel (one hash slot).

All start by reading the channel's epoch, creating a fresh one when the meta hash is missing
(history lost: TTL expiry, eviction, a restart without persistence).  A fresh epoch deletes
any orphaned stream so offsets can restart at 1.  The ``#!lua`` shebang (Redis 7) makes Redis
refuse a script up front under OOM instead of failing half-way through.

KEYS[1] = meta hash, KEYS[2] = stream; ARGV[1] = candidate epoch, ARGV[2] = TTL in ms.
"""

from __future__ import annotations

_ENSURE_EPOCH = """#!lua
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
local epoch = meta[1]
local top = 0
if epoch then
  top = tonumber(meta[2]) or 0
else
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
"""

# ARGV[3] = packed payload, ARGV[4] = MAXLEN, ARGV[5] = pub/sub channel
PUBLISH = (
    _ENSURE_EPOCH
    + """
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], offset .. '-0', 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[5], 'e' .. offset .. ':' .. epoch .. ':' .. ARGV[3])
return {offset, epoch}
"""
)

# Redis Cluster: sharded pub/sub.  The channel name has the keys' hash tag (same slot).
PUBLISH_SHARDED = PUBLISH.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")
assert PUBLISH_SHARDED != PUBLISH

POSITION = _ENSURE_EPOCH + "\nreturn {top, epoch}\n"

# ARGV[3] = client's epoch ('' = none), ARGV[4] = client's offset, ARGV[5] = first stream id
# to read when the client's position is in this epoch, ARGV[6] = COUNT (0 = all).
# Anything else (other epoch, offset ahead of the newest) replays all that is kept.
HISTORY = (
    _ENSURE_EPOCH
    + """
local start = '-'
local since = tonumber(ARGV[4])
if ARGV[3] == epoch and since >= 0 and since <= top then
  if since == top then
    return {top, epoch, {}}
  end
  start = ARGV[5]
end
local entries
if tonumber(ARGV[6]) > 0 then
  entries = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', ARGV[6])
else
  entries = redis.call('XRANGE', KEYS[2], start, '+')
end
return {top, epoch, entries}
"""
)
