-- Events of one generation after a seq, packed into one string so the client parses one
-- reply instead of five per event: the session's status and last seq, then seq, name and
-- data per event, newline-separated. A page holds at most `limit` events and, when
-- max_bytes is not 0, no more than max_bytes of data (at least one event), so no replay
-- is ever one unbounded reply.
-- Returns false once the key holds another generation, so a reader never takes one
-- run's events for another's.
-- A compacted generation (see compact.lua) is read from its entries, in a hash or, for
-- a small one, a string: a text run the cursor points inside gives one event, the rest
-- of its text, with the run's last seq.
-- KEYS: state, events. ARGV: generation, after_seq, limit, max_bytes (0 = no bound).
local s = redis.call('HMGET', KEYS[1], 'gen', 'status', 'last', 'packed')
if s[1] ~= ARGV[1] then return false end
local after = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local max_bytes = tonumber(ARGV[4]) or 0
local out = {s[2], s[3]}

if s[4] ~= ARGV[1] then
  local rows = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', limit)
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
end

local function bytes_before(bounds, count)
  local pos, total = 0, 0
  local function nibble()
    local byte = string.byte(bounds, math.floor(pos / 2) + 1)
    pos = pos + 1
    if pos % 2 == 1 then return math.floor(byte / 16) end
    return byte % 16
  end
  for _ = 1, count do
    local length = nibble()
    if length == 0 then
      for _ = 1, nibble() do length = length * 16 + nibble() end
    end
    total = total + length
  end
  return total
end

-- `found` reaches `limit` once the page is full, by count or by bytes.
local found, size = 0, 0
local function emit(seq, name, data)
  size = size + #data
  if max_bytes > 0 and size > max_bytes and found > 0 then
    found = limit
    return
  end
  out[#out + 1] = seq
  out[#out + 1] = name
  out[#out + 1] = data
  found = found + 1
end

local function emit_run(entry, first, last)
  local colon = string.find(entry, ':', 2, true)
  local size = tonumber(string.sub(entry, 2, colon - 1))
  local start = colon + size + 1
  if after >= first then
    start = start + bytes_before(string.sub(entry, colon + 1, colon + size), after - first + 1)
  end
  emit(last, '', '"' .. string.sub(entry, start) .. '"')
end

local function emit_block(entry, first)
  local seq, from = first, 2
  while found < limit do
    local name_end = string.find(entry, '\n', from, true)
    local data_end = string.find(entry, '\n', name_end + 1, true)
    if seq > after then
      emit(seq, string.sub(entry, from, name_end - 1),
        string.sub(entry, name_end + 1, (data_end or 0) - 1))
    end
    if not data_end then return end
    seq, from = seq + 1, data_end + 1
  end
end

local function emit_entry(entry, first, last)
  if string.sub(entry, 1, 1) == 'T' then
    emit_run(entry, first, last)
  else
    emit_block(entry, first)
  end
end

if redis.call('TYPE', KEYS[2]).ok == 'string' then
  local record = redis.call('GET', KEYS[2])
  local pos, previous = 1, 0
  while pos <= #record and found < limit do
    local colon = string.find(record, ':', pos, true)
    local size_end = string.find(record, ':', colon + 1, true)
    local last = tonumber(string.sub(record, pos, colon - 1))
    local size = tonumber(string.sub(record, colon + 1, size_end - 1))
    if last > after then
      emit_entry(string.sub(record, size_end + 1, size_end + size), previous + 1, last)
    end
    previous, pos = last, size_end + size + 1
  end
  return table.concat(out, '\n')
end
local previous = 0
for listed in string.gmatch(redis.call('HGET', KEYS[2], 'i') or '', '%d+') do
  if found >= limit then break end
  local last = tonumber(listed)
  if last > after then emit_entry(redis.call('HGET', KEYS[2], listed), previous + 1, last) end
  previous = last
end
return table.concat(out, '\n')
