-- A worker takes over a generation that a web process claimed for it (`claim` with
-- pending): once per generation, and only before the start deadline, which the pending
-- generation's lease holds. From then on the worker owns the lease like any producer.
-- A retry of the same adoption (the same token) is answered 'ok' again.
-- KEYS: state. ARGV: generation, owner, token, lease_ms, retention_ms.
-- Returns 'ok', or why not: 'stale' (another generation, or none), the status the
-- generation ended with, 'adopted' (another worker has it) or 'expired' (too late).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'gen', 'status', 'adopter', 'lease')
if s[1] ~= ARGV[1] then return 'stale' end
if s[2] ~= 'active' then return s[2] end
if s[3] == ARGV[3] then return 'ok' end
if s[3] ~= '?' then return 'adopted' end
if tonumber(s[4]) <= now then return 'expired' end
redis.call('HSET', KEYS[1], 'adopter', ARGV[3], 'owner', ARGV[2], 'lease', now + tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 'ok'
