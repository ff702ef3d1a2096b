-- A node's heartbeat, and the sweep that finds dead nodes. Modes (ARGV[6]):
-- "register" enters the node (a start, or after others took it for dead),
-- "beat" extends its life (unless others took it for dead: "reaped"),
-- "bye" shortens it to ARGV[7] ms (a graceful stop: its members leave
-- after the leave delay unless they joined elsewhere), "sweep" only looks.
--
-- KEYS (after the prelude's four): KEYS[5] the node's member holds, KEYS[6]
-- the channels it has subscribers of. ARGV (after the prelude's four):
-- ARGV[5] the node, ARGV[6] the mode, ARGV[7] its life in ms (the presence
-- TTL; the leave delay for "bye"), ARGV[8] how many dead nodes to list.
--
-- It answers the prelude's head, the node's holds in Redis (members,
-- channels), and up to ARGV[8] nodes whose heartbeat expired.
local mode = ARGV[6]
local status = 'ok'
if (mode == 'beat' or mode == 'sweep') and not alive(ARGV[5]) then
  status = 'reaped'
elseif mode == 'beat' or mode == 'register' then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[5])
elseif mode == 'bye' then
  redis.call('ZADD', KEYS[3], 'XX', now + tonumber(ARGV[7]), ARGV[5])
end
local r = reply(status)
r[#r + 1] = redis.call('SCARD', KEYS[5])
r[#r + 1] = redis.call('SCARD', KEYS[6])
r[#r + 1] = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[8]))
return r
