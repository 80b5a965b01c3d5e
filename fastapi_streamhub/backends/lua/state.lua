-- The session's state, with the lease measured on the server's clock.
-- KEYS: state. Returns {status, generation, owner, lease_left_ms, last_seq, metadata} or nil.
local s = redis.call('HMGET', KEYS[1], 'status', 'gen', 'owner', 'lease', 'last', 'meta')
if not s[1] then return nil end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {s[1], s[2], s[3], tonumber(s[4]) - now, tonumber(s[5]), s[6]}
