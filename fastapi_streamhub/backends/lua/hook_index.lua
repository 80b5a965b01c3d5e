-- The index of sessions whose generation may owe a finish hook, so that any instance
-- finds the hooks an instance that died left owed. One sorted set for the whole prefix
-- (its only key), scored by when to look (ms, on the server's clock).
-- KEYS: the index. ARGV: action, then
--   'add', delay_ms, key...: look at these keys delay_ms from now; returns their score;
--   'due', limit: up to limit keys due now, each followed by its score;
--   'drop', key, score, ...: forget each key whose score is still the one given (a new
--   generation may have added it again since).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'add' then
  local due = now + tonumber(ARGV[2])
  for i = 3, #ARGV do redis.call('ZADD', KEYS[1], due, ARGV[i]) end
  return due
end
if ARGV[1] == 'due' then
  return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, ARGV[2])
end
for i = 2, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return 'ok'
