-- Returns the meta data, the server's time and the entries after ARGV[2] up
-- to ARGV[3], at most ARGV[4] of them. With ARGV[2] empty, or an epoch
-- ARGV[5] that is not the current one, it returns no entries. ARGV[1] is
-- the name of a new epoch, should one start.
--
-- It returns {epoch, floor, last, n, base, seconds, microseconds, entries,
-- lost}, where lost names the epoch this one replaced because events that
-- Redis had acknowledged were gone (lost.lua), or is empty.
local epoch, floor, last, n, base = meta(ARGV[1])
local t = redis.call('TIME')
local entries = {}
if ARGV[2] ~= '' and (ARGV[5] == '' or ARGV[5] == epoch) then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], ARGV[3], 'COUNT', ARGV[4])
end
local lost = redis.call('HGET', KEYS[2], 'lost') or ''
return {epoch, floor, last, string.format('%d', n), base, t[1], t[2], entries, lost}
