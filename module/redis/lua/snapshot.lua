-- The members of a channel and the position they are as of, in one read:
-- every change after that position is in the change stream, and none up
-- to it is missing from the members. It writes nothing.
--
-- KEYS[1] is the presence meta hash, KEYS[2] the channel's members
-- (user -> "<join ID> <info>"). ARGV[1] is the most members to list (-1:
-- all): above it the answer has the count only.
--
-- It answers {epoch, n, last, count, listed (0/1), {user, value, ...}}.
local m = redis.call('HMGET', KEYS[1], 'epoch', 'n', 'last')
local count = redis.call('HLEN', KEYS[2])
local max = tonumber(ARGV[1])
if max >= 0 and count > max then
  return {m[1] or '', m[2] or '', m[3] or '', count, 0, {}}
end
return {m[1] or '', m[2] or '', m[3] or '', count, 1, redis.call('HGETALL', KEYS[2])}
