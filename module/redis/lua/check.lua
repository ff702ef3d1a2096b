-- Checks at start that the ACL user may run every command the backplane
-- needs on the hub's keys (redis.acl_check_cmd, Redis 7): it runs nothing
-- of them and writes nothing.
--
-- KEYS[1] is the stream, KEYS[2] the meta hash, KEYS[3] an idempotency
-- key, KEYS[4] the presence meta hash, KEYS[5] the nodes' sorted set,
-- KEYS[6] this node's holds (a set), KEYS[7] a webhook lease. ARGV[1] is 1
-- when appends wait for replicas (WAIT). It returns the names of the
-- forbidden commands.
local s, m, id = KEYS[1], KEYS[2], KEYS[3]
local pm, nodes, set, lease = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local needed = {
  {'EVALSHA', '0000000000000000000000000000000000000000', '2', s, m},
  {'EVAL', 'return 1', '2', s, m},
  {'XREAD', 'COUNT', '1', 'BLOCK', '1', 'STREAMS', s, '0-0'},
  {'PING'},
  {'XADD', s, '*', 'n', '1'},
  {'XRANGE', s, '-', '+', 'COUNT', '1'},
  {'XREVRANGE', s, '+', '-', 'COUNT', '1'},
  {'XLEN', s},
  {'XTRIM', s, 'MAXLEN', '1'},
  {'XDEL', s, '0-1'},
  {'EXISTS', s},
  {'HSET', m, 'n', '0'},
  {'HGET', m, 'n'},
  {'HMGET', m, 'n'},
  {'GET', id},
  {'SET', id, 'x', 'PX', '1'},
  {'DEL', id},
  {'TIME'},
  -- presence and webhooks
  {'HSETNX', pm, 'n', '0'},
  {'HINCRBY', pm, 'n', '1'},
  {'HDEL', pm, 'n'},
  {'HLEN', pm},
  {'HGETALL', pm},
  {'SADD', set, 'x'},
  {'SREM', set, 'x'},
  {'SISMEMBER', set, 'x'},
  {'SCARD', set},
  {'SMEMBERS', set},
  {'SRANDMEMBER', set, '1'},
  {'ZADD', nodes, '1', 'x'},
  {'ZSCORE', nodes, 'x'},
  {'ZRANGEBYSCORE', nodes, '-inf', '1'},
  {'ZREM', nodes, 'x'},
  {'PEXPIRE', lease, '1'},
  {'PTTL', lease},
}
if ARGV[1] == '1' then
  needed[#needed + 1] = {'WAIT', '1', '1'}
end
local forbidden = {}
for _, c in ipairs(needed) do
  if not redis.acl_check_cmd(unpack(c)) then
    forbidden[#forbidden + 1] = c[1]
  end
end
return forbidden
