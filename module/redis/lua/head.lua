-- What the fetcher reads after each XREAD, on the same connection: the
-- meta hash's epoch, event count and last entry ID (empty strings when
-- absent), and Redis's clock for the append fence. It writes nothing. A
-- script rather than HMGET and TIME so that a cluster client sends all of
-- it to the node of the hub's slot.
--
-- KEYS[1] is the meta hash. It returns {epoch, n, last, seconds,
-- microseconds}.
local m = redis.call('HMGET', KEYS[1], 'epoch', 'n', 'last')
local t = redis.call('TIME')
return {m[1] or '', m[2] or '', m[3] or '', t[1], t[2]}
