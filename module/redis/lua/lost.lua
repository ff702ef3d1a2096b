-- Declares that events of epoch ARGV[1] that Redis had acknowledged are
-- gone (a failover promoted a replica that had not received them): unless
-- the epoch changed already (another node declared it first), the stream
-- goes on under a new epoch ARGV[2], with 'lost' naming the old one. The
-- entries, their numbers and the trim floor stay: a node goes on reading
-- after its position and delivers what it had not read yet under the new
-- epoch, while cursors of the old epoch resume with recovered:false and
-- every node resyncs its clients.
--
-- KEYS[1] is the stream, KEYS[2] the meta hash. It returns the current
-- epoch.
local cur = redis.call('HGET', KEYS[2], 'epoch')
if cur ~= ARGV[1] then
  return cur or ''
end
redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'lost', ARGV[1])
return ARGV[2]
