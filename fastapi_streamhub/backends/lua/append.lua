-- Append the writes of one writer round, one write per stream, in one call.
-- Each write stores events of its stream's current generation; seqs already stored
-- are skipped, so a retried write never duplicates. A terminal event ends the
-- session, records when ('ended'), and keeps it for the retention of its claim ('ret').
-- The lease is left to `refresh`, which the owner calls on a timer.
-- The events arrive once, as the notification text that is published afterwards:
-- 'E\n<generation>\n<first seq>\n<name>\n<data>...' (a name of '' is an unnamed event).
-- A text longer than max_notify_bytes is not published; 'R\n<generation>\n<first>\n<last>'
-- tells readers to read the range from the stream instead.
-- KEYS: per write, its state, events and event channel.
-- ARGV: retention_ms, max_notify_bytes, then per write its generation, metadata
-- ('' = unchanged) and notification ('' = none).
-- Returns one outcome per write: 'ok', the reason it was refused ('stale', 'done',
-- 'error', 'cancelled'), 'gap:<last seq>' when the stream holds fewer events than the
-- write assumes (a failover lost its tail), or 'error:<message>' when Redis failed it;
-- a failed write ends only its own stream, the others of the round still go in.

local retention_ms = ARGV[1]
local max_notify_bytes = tonumber(ARGV[2])

local function split(text)
  local fields = {}
  local from = 1
  while true do
    local stop = string.find(text, '\n', from, true)
    if not stop then
      fields[#fields + 1] = string.sub(text, from)
      return fields
    end
    fields[#fields + 1] = string.sub(text, from, stop - 1)
    from = stop + 1
  end
end

local function append(state, events, channel, generation, metadata, text)
  local s = redis.call('HMGET', state, 'gen', 'status', 'last')
  if s[1] ~= generation then return 'stale' end
  if s[2] ~= 'active' then return s[2] end
  local last = tonumber(s[3])
  local first = last
  local final = false
  if text ~= '' then
    local fields = split(text)
    local seq = tonumber(fields[3])
    for i = 4, #fields, 2 do
      local name = fields[i]
      if seq == last + 1 then
        if name == '' then
          redis.call('XADD', events, seq .. '-0', 'd', fields[i + 1])
        else
          redis.call('XADD', events, seq .. '-0', 'd', fields[i + 1], 'n', name)
        end
        last = seq
        final = name == 'done' or name == 'error' or name == 'cancelled'
        if final then s[2] = name end
      elseif seq > last + 1 then
        return 'gap:' .. last
      end
      seq = seq + 1
    end
  end
  if last > first then redis.call('HSET', state, 'last', last, 'status', s[2]) end
  if metadata ~= '' then redis.call('HSET', state, 'meta', metadata) end
  if first == 0 and last > 0 or final then
    local keep = retention_ms
    if final then
      local t = redis.call('TIME')
      local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      keep = redis.call('HGET', state, 'ret') or retention_ms
      redis.call('HSET', state, 'ended', now)
    end
    redis.call('PEXPIRE', state, keep)
    redis.call('PEXPIRE', events, keep)
  end
  if last > first then
    if #text <= max_notify_bytes then
      redis.call('PUBLISH', channel, text)
    else
      redis.call('PUBLISH', channel, 'R\n' .. generation .. '\n' .. (first + 1) .. '\n' .. last)
    end
  end
  return 'ok'
end

local outcomes = {}
for i = 1, #KEYS / 3 do
  local k = 3 * i - 2
  local a = 3 * i
  local ok, outcome = pcall(append, KEYS[k], KEYS[k + 1], KEYS[k + 2],
    ARGV[a], ARGV[a + 1], ARGV[a + 2])
  if ok then
    outcomes[i] = outcome
  elseif type(outcome) == 'table' and outcome.err then
    outcomes[i] = 'error:' .. outcome.err
  else
    outcomes[i] = 'error:' .. tostring(outcome)
  end
end
return outcomes
