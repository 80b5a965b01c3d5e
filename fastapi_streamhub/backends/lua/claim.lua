-- Start a new generation unless a live producer holds the key.
-- KEYS: state, events. ARGV: generation, owner, lease_ms, retention_ms, and optionally
-- pending ('1': the generation waits for a worker to adopt it, within lease_ms).
-- Returns {created, status, generation, owner, lease_left_ms, last_seq, metadata}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'status', 'gen', 'owner', 'lease', 'last', 'meta')
if s[1] == 'active' and tonumber(s[4]) > now then
  return {0, s[1], s[2], s[3], tonumber(s[4]) - now, tonumber(s[5]), s[6]}
end
local lease_ms = tonumber(ARGV[3])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'status', 'active', 'gen', ARGV[1], 'owner', ARGV[2],
  'lease', now + lease_ms, 'last', 0, 'meta', '{}')
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'adopter', '?')
else
  redis.call('HDEL', KEYS[1], 'adopter')
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, 'active', ARGV[1], ARGV[2], lease_ms, 0, '{}'}
