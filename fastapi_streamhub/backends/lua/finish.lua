-- End an active session from outside its producer: a cancel, or a producer whose
-- lease lapsed. Stores the terminal event (and when: 'ended'), keeps the session for the
-- retention of its claim ('ret'), then tells subscribers and the owner.
-- KEYS: state, events, event channel, control channel.
-- ARGV: generation or '', event name, data, retention_ms, only_if_lapsed ('1'/'0').
-- Returns {finished, status, generation, owner, lease_left_ms, last_seq, metadata} or nil.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'status', 'gen', 'owner', 'lease', 'last', 'meta')
if not s[1] then return nil end
local lease_left = tonumber(s[4]) - now
local last = tonumber(s[5])
if (ARGV[1] ~= '' and ARGV[1] ~= s[2]) or s[1] ~= 'active'
    or (ARGV[5] == '1' and lease_left > 0) then
  return {0, s[1], s[2], s[3], lease_left, last, s[6]}
end
local seq = last + 1
redis.call('XADD', KEYS[2], seq .. '-0', 'd', ARGV[3], 'n', ARGV[2])
local keep = redis.call('HGET', KEYS[1], 'ret') or ARGV[4]
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'last', seq, 'ended', now)
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('PUBLISH', KEYS[3], 'E\n' .. s[2] .. '\n' .. seq .. '\n' .. ARGV[2] .. '\n' .. ARGV[3])
if ARGV[2] == 'cancelled' then
  redis.call('PUBLISH', KEYS[4], 'C\ncancel\n' .. s[2])
end
return {1, ARGV[2], s[2], s[3], lease_left, seq, s[6]}
