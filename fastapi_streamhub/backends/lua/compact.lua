-- Compact an ended generation, one bounded step per call (see backends/_packing.py,
-- whose rules this follows byte for byte). Each step packs up to `chunk` raw events
-- into entries of a hash built beside the events stream, and keeps the entries it
-- closed (the next step starts after them; a step that closed none keeps its last
-- one); the last step renames that hash over the stream, so a reader sees either every
-- raw event or the packed ones, never a mix. A step that finds the work done, or the generation replaced or still
-- running, changes nothing; so a retried or repeated call is harmless.
-- The hash: field 'i' lists the entries' last seqs ('3,4092,4093'); each entry is a
-- field named by its last seq, holding a text run 'T<n>:<bounds><text>' (the JSON
-- strings of its tokens concatenated without their quotes; <bounds>, <n> bytes, the
-- length of each token but the last, in half-bytes) or a block 'B<name>\n<data>...'
-- of events kept whole, separated by newlines. A generation whose entries take at
-- most `cap` bytes in all is stored as a plain string instead: each entry as
-- '<last seq>:<length>:<entry>', one after the other.
-- KEYS: state, events, packing. ARGV: generation, chunk, cap.
-- Returns 'done', 'more' (call again), or 'skipped'.

local s = redis.call('HMGET', KEYS[1], 'gen', 'status', 'last', 'packing', 'packed')
if s[1] ~= ARGV[1] or not s[2] or s[2] == 'active' then return 'skipped' end
if s[5] == ARGV[1] then return 'done' end
local last = tonumber(s[3])
local chunk = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local from = 0
if s[4] then
  local g, p = string.match(s[4], '^(.*):(%d+)$')
  if g == ARGV[1] and redis.call('EXISTS', KEYS[3]) == 1 then from = tonumber(p) end
end
if from == 0 then redis.call('DEL', KEYS[3]) end
local to = math.min(from + chunk, last)
local rows = redis.call('XRANGE', KEYS[2], (from + 1) .. '-0', to .. '-0')
if #rows ~= to - from then
  -- Storage lost raw events (a failover): leave the stream as it is.
  redis.call('DEL', KEYS[3])
  redis.call('HDEL', KEYS[1], 'packing')
  return 'skipped'
end

local function nibble_count(length)
  if length >= 1 and length <= 15 then return 1 end
  return 2 + #string.format('%x', length)
end

local function digits(n)
  local count = 1
  while n >= 10 do n, count = math.floor(n / 10), count + 1 end
  return count
end

local function run_bytes(nibbles, data)
  local bounds = math.floor((nibbles + 1) / 2)
  return 2 + digits(bounds) + bounds + data
end

local function encode_bounds(lengths, count)
  local n = {}
  for i = 1, count do
    local length = lengths[i]
    if length >= 1 and length <= 15 then
      n[#n + 1] = length
    else
      local hex = string.format('%x', length)
      n[#n + 1] = 0
      n[#n + 1] = #hex
      for j = 1, #hex do n[#n + 1] = tonumber(string.sub(hex, j, j), 16) end
    end
  end
  local bytes = {}
  for i = 1, #n, 2 do bytes[#bytes + 1] = string.char(n[i] * 16 + (n[i + 1] or 0)) end
  return table.concat(bytes)
end

local index, packed = {}, {}
local kind, first, size, nibbles = nil, 0, 0, 0
local tokens, lengths, parts = {}, {}, {}

local function close(upto)
  local entry
  if kind == 'T' then
    local bounds = encode_bounds(lengths, #lengths - 1)
    entry = 'T' .. #bounds .. ':' .. bounds .. table.concat(tokens)
  elseif kind == 'B' then
    entry = 'B' .. table.concat(parts, '\n')
  end
  if entry then
    redis.call('HSET', KEYS[3], upto, entry)
    index[#index + 1] = upto
    packed[#packed + 1] = upto .. ':' .. #entry .. ':' .. entry
  end
  kind, tokens, lengths, parts = nil, {}, {}, {}
end

local function add_token(seq, inner)
  local length = #inner
  if kind == 'T' then
    local grown = nibbles + nibble_count(lengths[#lengths])
    if run_bytes(grown, size + length) <= cap then
      tokens[#tokens + 1] = inner
      lengths[#lengths + 1] = length
      nibbles, size = grown, size + length
      return
    end
  end
  close(seq - 1)
  kind, first, size, nibbles = 'T', seq, length, 0
  tokens[1], lengths[1] = inner, length
end

local function add_event(seq, name, data)
  local piece = #name + 1 + #data
  if kind == 'B' and size + 1 + piece <= cap then
    parts[#parts + 1] = name .. '\n' .. data
    size = size + 1 + piece
    return
  end
  close(seq - 1)
  kind, first, size = 'B', seq, 1 + piece
  parts[1] = name .. '\n' .. data
end

for i, row in ipairs(rows) do
  local seq = from + i
  local fields = row[2]
  local data, name = fields[2], fields[4]
  if not name and string.byte(data, 1) == 34 then
    add_token(seq, string.sub(data, 2, -2))
  else
    add_event(seq, name or '', data)
  end
end
if to == last or #index == 0 then
  close(to)
else
  to = index[#index]
end

local listed = redis.call('HGET', KEYS[3], 'i')
local added = table.concat(index, ',')
if listed and listed ~= '' then added = listed .. ',' .. added end
redis.call('HSET', KEYS[3], 'i', added)
local ttl = redis.call('PTTL', KEYS[1])
if to == last then
  local whole = table.concat(packed)
  if from == 0 and #whole <= cap then
    -- A small generation: one plain string, a fraction of a hash's overhead.
    redis.call('DEL', KEYS[3])
    redis.call('SET', KEYS[2], whole)
  else
    redis.call('RENAME', KEYS[3], KEYS[2])
  end
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
  redis.call('HSET', KEYS[1], 'packed', ARGV[1])
  redis.call('HDEL', KEYS[1], 'packing')
  return 'done'
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
redis.call('HSET', KEYS[1], 'packing', ARGV[1] .. ':' .. to)
return 'more'
