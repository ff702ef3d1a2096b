-- Changes what one node holds, in one atomic step per batch of operations,
-- and decides what that changes for the whole hub: a user becomes a member
-- of a channel when the first node holds it and stops being one when the
-- last node lets go; a channel is occupied while any node has subscribers.
-- Each member change goes to the change stream, and its webhook to the
-- webhook stream, in the same step, so that it is decided and queued once.
--
-- KEYS (after the prelude's four): KEYS[5] the node's member holds
-- (a set of "<channel>\n<user>"), KEYS[6] the channels it has subscribers
-- of, KEYS[7] the occupied channels (channel -> nodes), then per channel
-- its members (user -> "<join ID> <info>") and its holders (user -> nodes).
--
-- ARGV (after the prelude's four): ARGV[5] the node, ARGV[6] "own" (the
-- node is this one, which must be alive) or "reap" (a node whose heartbeat
-- expired, whose holds a survivor takes away), ARGV[7] the webhooks to
-- queue (four characters "0"/"1": occupied, vacated, added, removed), then
-- six per operation: kind ("j" join, "l" leave, "o" occupy, "v" vacate),
-- the index in KEYS of the channel's members hash (its holders' follows; 0
-- for o and v), the channel, the user, the info, and for a join the member
-- limit (0: none; a user who would be a new member of a channel that has
-- that many is refused: "full").
--
-- It answers the prelude's head, then the node's holds left ("reap" only),
-- then per operation its status, its change's ID ("" for none) and the
-- channel's member count.
local own = ARGV[6] == 'own'
local live = alive(ARGV[5])
if own and not live then
  return reply('reaped')
end
if not own and live then
  return reply('alive')
end
local hooks = ARGV[7]
local out = {}
local a = 8
while a <= #ARGV do
  local op, k, c, u, info, limit = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], tonumber(ARGV[a + 5])
  a = a + 6
  local status, id, count = 'noop', '', 0
  if op == 'j' or op == 'l' then
    local pm, pn = KEYS[k], KEYS[k + 1]
    local e = c .. '\n' .. u
    if op == 'j' and redis.call('SISMEMBER', KEYS[5], e) == 0 then
      local was = tonumber(redis.call('HGET', pn, u) or '0')
      if was == 0 and limit > 0 and redis.call('HLEN', pm) >= limit then
        status = 'full'
      else
        redis.call('SADD', KEYS[5], e)
        redis.call('HINCRBY', pn, u, 1)
        status = 'more'
        if was == 0 then
          redis.call('HSET', pm, u, ' ' .. info)
          id = change('a', c, u, info, redis.call('HLEN', pm))
          redis.call('HSET', pm, u, id .. ' ' .. info)
          if string.sub(hooks, 3, 3) == '1' then hook('member_added', c, u) end
          status = 'added'
        end
      end
    elseif op == 'l' and redis.call('SREM', KEYS[5], e) == 1 then
      status = 'less'
      if redis.call('HINCRBY', pn, u, -1) <= 0 then
        redis.call('HDEL', pn, u)
        redis.call('HDEL', pm, u)
        id = change('r', c, u, '', redis.call('HLEN', pm))
        if string.sub(hooks, 4, 4) == '1' then hook('member_removed', c, u) end
        status = 'removed'
      end
    end
    count = redis.call('HLEN', pm)
  elseif op == 'o' and redis.call('SADD', KEYS[6], c) == 1 then
    status = 'more'
    if redis.call('HINCRBY', KEYS[7], c, 1) == 1 then
      if string.sub(hooks, 1, 1) == '1' then hook('channel_occupied', c, '') end
      status = 'occupied'
    end
  elseif op == 'v' and redis.call('SREM', KEYS[6], c) == 1 then
    status = 'less'
    if redis.call('HINCRBY', KEYS[7], c, -1) <= 0 then
      redis.call('HDEL', KEYS[7], c)
      if string.sub(hooks, 2, 2) == '1' then hook('channel_vacated', c, '') end
      status = 'vacated'
    end
  end
  out[#out + 1] = status
  out[#out + 1] = id
  out[#out + 1] = count
end
local left = -1
if not own then
  left = redis.call('SCARD', KEYS[5]) + redis.call('SCARD', KEYS[6])
  if left == 0 then
    redis.call('ZREM', KEYS[3], ARGV[5])
  end
end
local r = reply('ok')
r[#r + 1] = left
r[#r + 1] = out
return r
