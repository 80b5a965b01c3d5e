-- Events of one generation after a seq, packed into one string so the client parses one
-- reply instead of five per event: the session's status and last seq, then seq, name and
-- data per event, newline-separated.
-- Returns false once the key holds another generation, so a reader never takes one
-- run's events for another's.
-- KEYS: state, events. ARGV: generation, after_seq, limit.
local s = redis.call('HMGET', KEYS[1], 'gen', 'status', 'last')
if s[1] ~= ARGV[1] then return false end
local rows = redis.call('XRANGE', KEYS[2], (tonumber(ARGV[2]) + 1) .. '-0', '+', 'COUNT', ARGV[3])
local out = {s[2], s[3]}
for _, row in ipairs(rows) do
  local id, fields = row[1], row[2]
  out[#out + 1] = string.sub(id, 1, string.find(id, '-', 1, true) - 1)
  out[#out + 1] = fields[4] or ''
  out[#out + 1] = fields[2]
end
return table.concat(out, '\n')
