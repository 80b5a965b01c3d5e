-- Extend the owner's lease and the expiry of the session's keys, for every running
-- producer of a process in one call.
-- KEYS: per lease, its state and events. ARGV: lease_ms, retention_ms, then per
-- lease its generation.
-- Returns one outcome per lease: 'ok', or the reason it was refused ('stale', or the
-- status of a session that has ended).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_until = now + tonumber(ARGV[1])
local retention_ms = ARGV[2]
local outcomes = {}
for i = 1, #KEYS / 2 do
  local state, events = KEYS[2 * i - 1], KEYS[2 * i]
  local s = redis.call('HMGET', state, 'gen', 'status')
  if s[1] ~= ARGV[2 + i] then
    outcomes[i] = 'stale'
  elseif s[2] ~= 'active' then
    outcomes[i] = s[2]
  else
    redis.call('HSET', state, 'lease', lease_until)
    redis.call('PEXPIRE', state, retention_ms)
    redis.call('PEXPIRE', events, retention_ms)
    outcomes[i] = 'ok'
  end
end
return outcomes
