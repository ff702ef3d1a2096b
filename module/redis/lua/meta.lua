-- The prelude of every script: meta reads the hub's meta hash (epoch, trim
-- floor, last appended ID, event count, epoch base) and, when the epoch is
-- missing or the stream vanished under it (a Redis that lost its data, an
-- eviction), starts a new epoch named fresh. A new epoch begins after
-- whatever the stream still holds ("base"), so entries of a dead epoch are
-- never handed out under a new one.
--
-- KEYS[1] is the stream, KEYS[2] the meta hash.
local function meta(fresh)
  local m = redis.call('HMGET', KEYS[2], 'epoch', 'floor', 'last', 'n', 'base')
  if m[1] and (m[3] == '0-0' or redis.call('EXISTS', KEYS[1]) == 1) then
    return m[1], m[2], m[3], tonumber(m[4]), m[5]
  end
  local base = '0-0'
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #top > 0 then base = top[1][1] end
  redis.call('HSET', KEYS[2], 'epoch', fresh, 'floor', base, 'last', base, 'n', 0, 'base', base, 'lost', '')
  return fresh, base, base, 0, base
end
