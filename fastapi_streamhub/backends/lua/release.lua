-- The producer of a generation has stopped: clear the owner and end its lease, so a
-- session it left `active` (it could not store its terminal event) reads as lapsed and
-- its readers end it at once. Tells waiters.
-- KEYS: state, control channel. ARGV: generation.
if redis.call('HGET', KEYS[1], 'gen') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'owner', '', 'lease', 0)
end
redis.call('PUBLISH', KEYS[2], 'C\nstopped\n' .. ARGV[1])
return 'ok'
