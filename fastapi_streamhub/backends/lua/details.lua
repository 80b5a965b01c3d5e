-- A session's state with what the end of a generation needs: when it started and ended
-- (ms, on the server's clock), its finish hook ('' none, 'o' owed, 'r' running, 'd' done)
-- and hook name, and whether its events are compacted.
-- KEYS: state.
-- Returns {status, generation, owner, lease_left_ms, last_seq, metadata, started, ended,
-- hook, hook_name, compacted, pending}, or false.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'status', 'gen', 'owner', 'lease', 'last', 'meta',
  'started', 'ended', 'hook', 'hook_name', 'packed', 'adopter')
if not s[1] then return false end
return {s[1], s[2], s[3], tonumber(s[4]) - now, tonumber(s[5]), s[6], s[7] or '0', s[8] or '',
  string.sub(s[9] or '', 1, 1), s[10] or '', s[11] == s[2] and 1 or 0,
  (s[12] == '?' and s[1] == 'active') and 1 or 0}
