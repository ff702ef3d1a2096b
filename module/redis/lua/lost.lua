-- Declares that events of epoch ARGV[1] that Redis had acknowledged are
-- gone (a failover promoted a replica that had not received them): unless
-- the epoch changed already (another node declared it first), a new epoch
-- ARGV[2] begins after whatever the stream holds, with 'lost' naming the
-- old one, so that every node resyncs its clients and cursors of the old
-- epoch resume with recovered:false.
--
-- KEYS[1] is the stream, KEYS[2] the meta hash. It returns the current
-- epoch.
local cur = redis.call('HGET', KEYS[2], 'epoch')
if cur ~= ARGV[1] then
  return cur or ''
end
local base = redis.call('HGET', KEYS[2], 'last') or '0-0'
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top > 0 then base = top[1][1] end
redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'floor', base, 'last', base, 'n', 0, 'base', base, 'lost', ARGV[1])
return ARGV[2]
