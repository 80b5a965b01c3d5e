-- Events of one generation after a seq, packed into one string so the client parses one
-- reply instead of five per event: the session's status and last seq, then seq, name and
-- data per event, newline-separated. A page holds at most `limit` events and, when
-- max_bytes is not 0, no more than max_bytes of data (at least one event), so no replay
-- is ever one unbounded reply.
-- Returns false once the key holds another generation, so a reader never takes one
-- run's events for another's.
-- KEYS: state, events. ARGV: generation, after_seq, limit, max_bytes (0 = no bound).
local s = redis.call('HMGET', KEYS[1], 'gen', 'status', 'last')
if s[1] ~= ARGV[1] then return false end
local max_bytes = tonumber(ARGV[4]) or 0
local rows = redis.call('XRANGE', KEYS[2], (tonumber(ARGV[2]) + 1) .. '-0', '+', 'COUNT', ARGV[3])
local out = {s[2], s[3]}
local size = 0
for index, row in ipairs(rows) do
  local id, fields = row[1], row[2]
  size = size + #fields[2]
  if max_bytes > 0 and size > max_bytes and index > 1 then break end
  out[#out + 1] = string.sub(id, 1, string.find(id, '-', 1, true) - 1)
  out[#out + 1] = fields[4] or ''
  out[#out + 1] = fields[2]
end
return table.concat(out, '\n')
