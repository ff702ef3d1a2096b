-- Records that a target is done with the webhook events up to ARGV[2]
-- (never moving its position back), and trims the stream: entries every
-- recently active target is done with, and entries older than ARGV[3] ms
-- (senders give up on them anyway). A target that acknowledged nothing
-- for ARGV[3] ms no longer holds the stream back, and is forgotten.
--
-- KEYS[1] is the acknowledged positions (target -> "<entry ID> <ms>"),
-- KEYS[2] the webhook stream. ARGV[1] is the target.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local maxAge = tonumber(ARGV[3])
local function less(x, y)
  local xm, xs = string.match(x, '^(%d+)-(%d+)$')
  local ym, ys = string.match(y, '^(%d+)-(%d+)$')
  xm, xs, ym, ys = tonumber(xm), tonumber(xs), tonumber(ym), tonumber(ys)
  return xm < ym or (xm == ym and xs < ys)
end
local pos = ARGV[2]
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  cur = string.match(cur, '^(%S+)')
  if less(pos, cur) then pos = cur end
end
redis.call('HSET', KEYS[1], ARGV[1], pos .. ' ' .. string.format('%d', now))
local low = nil
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local id, at = string.match(all[i + 1], '^(%S+) (%d+)$')
  if id and tonumber(at) >= now - maxAge then
    if not low or less(id, low) then low = id end
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
if low then
  redis.call('XTRIM', KEYS[2], 'MINID', low)
end
redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', now - maxAge) .. '-0')
return 1
