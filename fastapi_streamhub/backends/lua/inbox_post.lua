-- Post a message to the inbox of the session's running generation, and tell its owner.
-- The inbox is one Stream per session; the state hash names the generation it holds
-- ('ibx'), so the first message of a new generation finds the old messages and drops
-- them: a message never reaches a generation it was not posted to.
-- KEYS: state, inbox, control channel. ARGV: kind, payload, source, max_entries.
-- Returns {'ok', generation, id}, or {'not_found'}, {'not_running', generation} (ended,
-- or its producer's lease lapsed), {'full', generation}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'status', 'gen', 'lease', 'ibx', 'ret')
if not s[1] then return {'not_found'} end
if s[1] ~= 'active' or tonumber(s[3]) <= now then return {'not_running', s[2]} end
if s[4] ~= s[2] then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'ibx', s[2])
elseif redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[4]) then
  return {'full', s[2]}
end
local id = redis.call('XADD', KEYS[2], '*', 'k', ARGV[1], 'p', ARGV[2], 's', ARGV[3])
local keep = redis.call('PTTL', KEYS[1])
if keep <= 0 then keep = tonumber(s[5]) end
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('PUBLISH', KEYS[3], 'C\ninbox\n' .. s[2])
return {'ok', s[2], id}
