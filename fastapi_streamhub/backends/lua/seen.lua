-- Readers are following these sessions: record it until hold_ms from now, so that the
-- instance running the generation does not take it for abandoned. Sessions that ended,
-- or do not exist, are left alone.
-- KEYS: the state of each session. ARGV: hold_ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen = now + tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  local s = redis.call('HMGET', key, 'status', 'seen')
  if s[1] == 'active' and (tonumber(s[2] or 0) < seen) then
    redis.call('HSET', key, 'seen', seen)
  end
end
return 'ok'
