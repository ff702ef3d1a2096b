-- The prelude of the presence scripts that write (hold.lua, beat.lua). It
-- reads Redis's clock, refuses a script run at or past its fence, reads the
-- presence meta hash (starting a new presence epoch when Redis lost it),
-- and defines what the scripts share.
--
-- KEYS[1] is the presence meta hash (epoch, n: changes in the epoch, last:
-- the last change's entry ID, wid: the webhook ID epoch), KEYS[2] the
-- presence change stream, KEYS[3] the nodes' sorted set (node -> when its
-- heartbeat expires, ms of Redis's clock), KEYS[4] the webhook stream.
--
-- ARGV[1] is the fence, ms of Redis's clock ("0": none): a script that
-- Redis runs at or past it applies nothing and answers "FENCED <seconds>
-- <microseconds>", because the node gave up on it and must not find it
-- applied later. ARGV[2] names a new epoch, should one start. ARGV[3] and
-- ARGV[4] bound the change stream and the webhook stream (MAXLEN ~).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] ~= '0' and now >= tonumber(ARGV[1]) then
  return redis.error_reply('FENCED ' .. t[1] .. ' ' .. t[2])
end

-- The epoch, the number of changes in it and the last change's ID. A
-- Redis that lost the meta hash (a restart without persistence, FLUSHALL,
-- an eviction) starts a new epoch: every node registers what it holds
-- again, and mirrors take new snapshots.
local epoch, n, last
do
  local m = redis.call('HMGET', KEYS[1], 'epoch', 'n', 'last')
  if m[1] then
    epoch, n, last = m[1], tonumber(m[2]), m[3]
  else
    redis.call('DEL', KEYS[2])
    epoch, n, last = ARGV[2], 0, '0-0'
    redis.call('HSET', KEYS[1], 'epoch', epoch, 'n', '0', 'last', last)
    redis.call('HSETNX', KEYS[1], 'wid', ARGV[2])
  end
end

-- alive reports whether node's heartbeat has not expired.
local function alive(node)
  return (tonumber(redis.call('ZSCORE', KEYS[3], node)) or 0) > now
end

-- change records a member added ('a', with its info) or removed ('r') in
-- the change stream, and returns its ID.
local function change(kind, c, u, info, count)
  n = n + 1
  local f = {'k', kind, 'c', c, 'u', u, 'n', string.format('%d', n), 'm', string.format('%d', count)}
  if info ~= '' then
    f[#f + 1] = 'i'
    f[#f + 1] = info
  end
  last = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(f))
  redis.call('HSET', KEYS[1], 'n', string.format('%d', n), 'last', last)
  return last
end

-- hook queues a webhook event, decided in the same script as its cause.
local function hook(name, c, u)
  local f = {'n', name, 'c', c}
  if u ~= '' then
    f[#f + 1] = 'u'
    f[#f + 1] = u
  end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', unpack(f))
end

-- reply is the common head of every answer.
local function reply(status)
  return {status, epoch, string.format('%d', n), last, t[1], t[2]}
end
