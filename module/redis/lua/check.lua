-- Checks at start that the ACL user may run every command the backplane
-- needs on the hub's keys (redis.acl_check_cmd, Redis 7): it runs nothing
-- of them and writes nothing.
--
-- KEYS[1] is the stream, KEYS[2] the meta hash, KEYS[3] an idempotency
-- key. ARGV[1] is 1 when appends wait for replicas (WAIT). It returns the
-- names of the forbidden commands.
local s, m, id = KEYS[1], KEYS[2], KEYS[3]
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
