-- Extends (ARGV[3] "renew", by ARGV[2] ms) or gives up (ARGV[3] "release")
-- a webhook target's lease, if node ARGV[1] holds it. KEYS[1] is the lease.
-- It answers 1 if the node held it, else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[3] == 'release' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
