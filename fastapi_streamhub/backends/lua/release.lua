-- The producer of a generation has stopped: clear the owner, tell waiters.
-- KEYS: state, control channel. ARGV: generation.
if redis.call('HGET', KEYS[1], 'gen') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'owner', '')
end
redis.call('PUBLISH', KEYS[2], 'C\nstopped\n' .. ARGV[1])
return 'ok'
