-- Appends a batch atomically: idempotency keys are checked and set and
-- entries added in one script, so a batch is all in or all out and a
-- repeated ID is answered with its first cursors.
--
-- A script that Redis runs at or after its fence (ARGV[1], milliseconds of
-- Redis's clock) applies nothing and answers the error "FENCED <seconds>
-- <microseconds>" (Redis's clock): the node gave up on it, so it must not
-- appear later. The clock is read before the first write and again after
-- the last entry is added: a Redis paused in the middle of the script (a
-- stopped process or VM) takes back what it added, which no other client
-- can have seen. Past the second reading the append stands.
--
-- KEYS[3..] are the idempotency keys, one per publication that has an ID, in
-- order. ARGV: [1] fence, [2] fresh epoch, [3] entries to keep (physical
-- MAXLEN), [4] age in ms past which entries are trimmed (0: none), [5] TTL
-- in ms of idempotency keys, [6] number of publications, then per
-- publication: id ("" for none), channel count, the channels, type, payload
-- ("" for none), timestamp ("" for none), excluded session ("" for none),
-- user id ("" for none).
--
-- It returns {epoch, seconds, microseconds, n, last, r1, r2, ...} (Redis's
-- clock at the second reading; the epoch's event count and last entry ID
-- after the append, which tell a node whether a later Redis lost them)
-- where ri is
-- {0, entryID...} for an accepted publication and {1, record} for a
-- duplicate.
local fence = tonumber(ARGV[1])
local function late()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) >= fence, t
end
local fenced, t = late()
if fenced then
  return redis.error_reply('FENCED ' .. t[1] .. ' ' .. t[2])
end
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch, floor, last, n = meta(ARGV[2])
local keep = tonumber(ARGV[3])
local maxAge = tonumber(ARGV[4])
local idttl = ARGV[5]
local npubs = tonumber(ARGV[6])
local out = {epoch, t[1], t[2], '', ''}
local a = 7
local k = 3
local added = {}
local setkeys = {}
for i = 1, npubs do
  local id = ARGV[a]
  local nch = tonumber(ARGV[a + 1])
  local chs = {}
  for j = 1, nch do chs[j] = ARGV[a + 1 + j] end
  a = a + 2 + nch
  local typ, payload, ts, excl, uid = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  a = a + 5
  local idkey = nil
  local rec = nil
  if id ~= '' then
    idkey = KEYS[k]
    k = k + 1
    rec = redis.call('GET', idkey)
  end
  if rec then
    out[#out + 1] = {1, rec}
  else
    local ids = {0}
    local parts = {epoch}
    for j = 1, nch do
      n = n + 1
      local f = {'n', string.format('%d', n), 'c', chs[j], 't', typ}
      if payload ~= '' then f[#f + 1] = 'p'; f[#f + 1] = payload end
      if ts ~= '' then f[#f + 1] = 's'; f[#f + 1] = ts end
      if id ~= '' then f[#f + 1] = 'i'; f[#f + 1] = id end
      if excl ~= '' then f[#f + 1] = 'x'; f[#f + 1] = excl end
      if uid ~= '' then f[#f + 1] = 'u'; f[#f + 1] = uid end
      local eid = redis.call('XADD', KEYS[1], '*', unpack(f))
      added[#added + 1] = eid
      ids[#ids + 1] = eid
      parts[#parts + 1] = chs[j]
      parts[#parts + 1] = eid
      last = eid
    end
    if idkey then
      redis.call('SET', idkey, table.concat(parts, '\n'), 'PX', idttl)
      setkeys[#setkeys + 1] = idkey
    end
    out[#out + 1] = ids
  end
end
fenced, t = late()
if fenced then
  for i = 1, #added, 1000 do
    redis.call('XDEL', KEYS[1], unpack(added, i, math.min(i + 999, #added)))
  end
  for _, key in ipairs(setkeys) do redis.call('DEL', key) end
  return redis.error_reply('FENCED ' .. t[1] .. ' ' .. t[2])
end
out[2], out[3] = t[1], t[2]
local len = redis.call('XLEN', KEYS[1])
if len > keep then
  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - keep)
  floor = old[#old][1]
  redis.call('XTRIM', KEYS[1], 'MAXLEN', keep)
end
if maxAge > 0 then
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
  if #first > 0 then
    local cutoff = now - maxAge
    if tonumber(string.match(first[1][1], '^(%d+)')) < cutoff then
      local min = string.format('%d', cutoff) .. '-0'
      local old = redis.call('XREVRANGE', KEYS[1], '(' .. min, '-', 'COUNT', 1)
      floor = old[1][1]
      redis.call('XTRIM', KEYS[1], 'MINID', min)
    end
  end
end
redis.call('HSET', KEYS[2], 'floor', floor, 'last', last, 'n', string.format('%d', n))
out[4], out[5] = string.format('%d', n), last
return out
