-- A webhook sender's read: it takes or extends the target's lease (one
-- sending node per target at a time) and, holding it, reads the events
-- after the target's acknowledged position.
--
-- KEYS[1] is the target's lease, KEYS[2] the acknowledged positions
-- (target -> "<entry ID> <ms of the acknowledgement>"), KEYS[3] the
-- webhook stream, KEYS[4] the presence meta hash (its wid names the
-- webhook IDs). ARGV[1] is the node, ARGV[2] the lease in ms, ARGV[3] the
-- target, ARGV[4] the most events to read.
--
-- It answers {0, the lease's ms left} when another node holds the lease,
-- else {1, wid, the position ("" for none), the first entry ID kept ("" for
-- none), the last ("" for none), entries}.
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif holder ~= ARGV[1] then
  return {0, redis.call('PTTL', KEYS[1])}
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local pos = redis.call('HGET', KEYS[2], ARGV[3])
local from = '-'
if pos then
  pos = string.match(pos, '^(%S+)')
  from = '(' .. pos
end
local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local entries = redis.call('XRANGE', KEYS[3], from, '+', 'COUNT', tonumber(ARGV[4]))
local f, l = '', ''
if #first > 0 then f = first[1][1] end
if #top > 0 then l = top[1][1] end
return {1, redis.call('HGET', KEYS[4], 'wid') or '', pos or '', f, l, entries}
