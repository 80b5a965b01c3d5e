-- The state of many sessions in one call, with leases measured on the server's clock.
-- KEYS: the state hash of each session.
-- Returns, per key, {pending, status, generation, owner, lease_left_ms, last_seq, metadata}
-- (pending: 1 while a generation claimed for a worker waits for it), or false where there
-- is no session.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rows = {}
for i, key in ipairs(KEYS) do
  local s = redis.call('HMGET', key, 'status', 'gen', 'owner', 'lease', 'last', 'meta', 'adopter')
  if s[1] then
    local pending = 0
    if s[7] == '?' and s[1] == 'active' then pending = 1 end
    rows[i] = {pending, s[1], s[2], s[3], tonumber(s[4]) - now, tonumber(s[5]), s[6]}
  else
    rows[i] = false
  end
end
return rows
