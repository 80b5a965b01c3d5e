-- The finish hook of an ended generation, run at least once by whichever instance takes
-- it. 'take' succeeds when the hook is owed and the generation ended at least grace_ms
-- ago (the instance that ran it takes it at once, others after a grace), or when the
-- instance holding it lets its hold lapse, or to renew one's own hold. 'done' records
-- that it ran.
-- KEYS: state. ARGV: action ('take' or 'done'), generation, holder, hold_ms, grace_ms.
-- Returns for 'take': 'taken', 'busy' (someone holds it, or not yet), 'done', or 'none'
-- (no hook owed: none set, another generation, no session, or not ended); for 'done': 'ok'.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'gen', 'status', 'hook', 'ended')
if s[1] ~= ARGV[2] or not s[3] then return 'none' end
if ARGV[1] == 'done' then
  redis.call('HSET', KEYS[1], 'hook', 'd')
  return 'ok'
end
if s[3] == 'd' then return 'done' end
if s[2] == 'active' then return 'none' end
local free
if s[3] == 'o' then
  free = now >= tonumber(s[4] or 0) + tonumber(ARGV[5])
else
  local until_ms, holder = string.match(s[3], '^r:(%d+):(.*)$')
  free = holder == ARGV[3] or tonumber(until_ms) <= now
end
if not free then return 'busy' end
redis.call('HSET', KEYS[1], 'hook', 'r:' .. (now + tonumber(ARGV[4])) .. ':' .. ARGV[3])
return 'taken'
