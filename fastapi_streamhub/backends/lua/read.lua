-- Events of one generation after a seq, packed into one string (seq, name, data per
-- event, newline-separated) so the client parses one reply instead of five per event.
-- Returns false once the key holds another generation, so a reader never takes one
-- run's events for another's.
-- KEYS: state, events. ARGV: generation, after_seq, limit.
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return false end
local rows = redis.call('XRANGE', KEYS[2], (tonumber(ARGV[2]) + 1) .. '-0', '+', 'COUNT', ARGV[3])
local out = {}
for _, row in ipairs(rows) do
  local id, fields = row[1], row[2]
  out[#out + 1] = string.sub(id, 1, string.find(id, '-', 1, true) - 1)
  out[#out + 1] = fields[4] or ''
  out[#out + 1] = fields[2]
end
return table.concat(out, '\n')
