-- Events of one generation after a seq; nil once the key holds another generation,
-- so a reader never takes one run's events for another's.
-- KEYS: state, events. ARGV: generation, after_seq, limit.
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return nil end
return redis.call('XRANGE', KEYS[2], (tonumber(ARGV[2]) + 1) .. '-0', '+', 'COUNT', ARGV[3])
