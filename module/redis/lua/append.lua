-- Appends a batch atomically: idempotency keys are checked and set and
-- entries added in one script, so a batch is all in or all out and a
-- repeated ID is answered with its first cursors.
--
-- KEYS[3..] are the idempotency keys, one per publication that has an ID, in
-- order. ARGV: [1] fresh epoch, [2] entries to keep (physical MAXLEN),
-- [3] age in ms past which entries are trimmed (0: none), [4] TTL in ms of
-- idempotency keys, [5] number of publications, then per publication: id
-- ("" for none), channel count, the channels, type, payload ("" for none),
-- timestamp ("" for none).
--
-- It returns {epoch, r1, r2, ...} where ri is {0, entryID...} for an
-- accepted publication and {1, record} for a duplicate.
local epoch, floor, last, n = meta(ARGV[1])
local keep = tonumber(ARGV[2])
local maxAge = tonumber(ARGV[3])
local idttl = ARGV[4]
local npubs = tonumber(ARGV[5])
local out = {epoch}
local a = 6
local k = 3
for i = 1, npubs do
  local id = ARGV[a]
  local nch = tonumber(ARGV[a + 1])
  local chs = {}
  for j = 1, nch do chs[j] = ARGV[a + 1 + j] end
  a = a + 2 + nch
  local typ, payload, ts = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  a = a + 3
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
      local eid = redis.call('XADD', KEYS[1], '*', unpack(f))
      ids[#ids + 1] = eid
      parts[#parts + 1] = chs[j]
      parts[#parts + 1] = eid
      last = eid
    end
    if idkey then
      redis.call('SET', idkey, table.concat(parts, '\n'), 'PX', idttl)
    end
    out[#out + 1] = ids
  end
end
local len = redis.call('XLEN', KEYS[1])
if len > keep then
  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - keep)
  floor = old[#old][1]
  redis.call('XTRIM', KEYS[1], 'MAXLEN', keep)
end
if maxAge > 0 then
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
  if #first > 0 then
    local t = redis.call('TIME')
    local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - maxAge
    if tonumber(string.match(first[1][1], '^(%d+)')) < cutoff then
      local min = string.format('%d', cutoff) .. '-0'
      local old = redis.call('XREVRANGE', KEYS[1], '(' .. min, '-', 'COUNT', 1)
      floor = old[1][1]
      redis.call('XTRIM', KEYS[1], 'MINID', min)
    end
  end
end
redis.call('HSET', KEYS[2], 'floor', floor, 'last', last, 'n', string.format('%d', n))
return out
