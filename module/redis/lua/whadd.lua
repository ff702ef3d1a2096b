-- Queues webhook events decided outside the presence scripts (client
-- events), atomically, unless Redis runs it at or past its fence.
--
-- KEYS[1] is the presence meta hash (its wid names the webhook IDs), KEYS[2]
-- the webhook stream. ARGV[1] is the fence (ms of Redis's clock), ARGV[2] a
-- new wid should there be none, ARGV[3] the stream's bound (MAXLEN ~), then
-- six per event: name, channel, user, event, data, socket ("" for none).
--
-- It answers the wid and the events' entry IDs.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now >= tonumber(ARGV[1]) then
  return redis.error_reply('FENCED ' .. t[1] .. ' ' .. t[2])
end
redis.call('HSETNX', KEYS[1], 'wid', ARGV[2])
local names = {'n', 'c', 'u', 'e', 'd', 's'}
local ids = {}
for a = 4, #ARGV, 6 do
  local f = {}
  for j = 1, 6 do
    if ARGV[a + j - 1] ~= '' then
      f[#f + 1] = names[j]
      f[#f + 1] = ARGV[a + j - 1]
    end
  end
  ids[#ids + 1] = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(f))
end
return {redis.call('HGET', KEYS[1], 'wid'), ids}
