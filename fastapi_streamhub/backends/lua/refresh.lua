-- Extend the owner's lease and the expiry of the session's keys.
-- KEYS: state, events. ARGV: generation, lease_ms, retention_ms.
local s = redis.call('HMGET', KEYS[1], 'gen', 'status')
if s[1] ~= ARGV[1] then return 'stale' end
if s[2] ~= 'active' then return s[2] end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 'ok'
