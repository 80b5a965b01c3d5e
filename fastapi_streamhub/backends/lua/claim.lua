-- Start a new generation unless a live producer holds the key, or the last generation
-- still owes its finish hook (its events stay until the hook has read them).
-- KEYS: state, events. ARGV: generation, owner, lease_ms, retention_ms, and optionally
-- pending ('1': the generation waits for a worker to adopt it, within lease_ms) and the
-- name of the new generation's finish hook ('' or absent: none). The retention given
-- here is the one every end of this generation applies ('ret').
-- Returns {created, status, generation, owner, lease_left_ms, last_seq, metadata}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'status', 'gen', 'owner', 'lease', 'last', 'meta', 'hook')
local owed = s[7] == 'o' or (s[7] and string.sub(s[7], 1, 1) == 'r')
if (s[1] == 'active' and tonumber(s[4]) > now) or owed then
  return {0, s[1], s[2], s[3], tonumber(s[4]) - now, tonumber(s[5]), s[6]}
end
local lease_ms = tonumber(ARGV[3])
local hook = ARGV[6] or ''
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], 'ended', 'seen', 'packed', 'packing', 'hook', 'hook_name')
redis.call('HSET', KEYS[1], 'status', 'active', 'gen', ARGV[1], 'owner', ARGV[2],
  'lease', now + lease_ms, 'last', 0, 'meta', '{}', 'started', now, 'ret', ARGV[4])
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'adopter', '?')
else
  redis.call('HDEL', KEYS[1], 'adopter')
end
if hook ~= '' then redis.call('HSET', KEYS[1], 'hook', 'o', 'hook_name', hook) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, 'active', ARGV[1], ARGV[2], lease_ms, 0, '{}'}
