-- Append events of the current generation; seqs already stored are skipped, so a
-- retried write never duplicates. A terminal event ends the session. The lease is
-- left to `refresh`, which the owner calls on a timer.
-- The events arrive once, as the notification text that is published afterwards:
-- 'E\n<generation>\n<first seq>\n<name>\n<data>...' (a name of '' is an unnamed event).
-- KEYS: state, events, event channel.
-- ARGV: generation, retention_ms, metadata ('' = unchanged), notification ('' = none).
-- Returns 'ok', or the reason the write was refused ('stale', 'done', 'error', 'cancelled').
local s = redis.call('HMGET', KEYS[1], 'gen', 'status', 'last')
if s[1] ~= ARGV[1] then return 'stale' end
if s[2] ~= 'active' then return s[2] end
local last = tonumber(s[3])
local first = last
local final = false
local text = ARGV[4]
if text ~= '' then
  local fields = {}
  local from = 1
  while true do
    local stop = string.find(text, '\n', from, true)
    if not stop then
      fields[#fields + 1] = string.sub(text, from)
      break
    end
    fields[#fields + 1] = string.sub(text, from, stop - 1)
    from = stop + 1
  end
  local seq = tonumber(fields[3])
  for i = 4, #fields, 2 do
    local name = fields[i]
    if seq == last + 1 then
      if name == '' then
        redis.call('XADD', KEYS[2], seq .. '-0', 'd', fields[i + 1])
      else
        redis.call('XADD', KEYS[2], seq .. '-0', 'd', fields[i + 1], 'n', name)
      end
      last = seq
      final = name == 'done' or name == 'error' or name == 'cancelled'
      if final then s[2] = name end
    elseif seq > last + 1 then
      return redis.error_reply('ERR gap in appended events')
    end
    seq = seq + 1
  end
end
if last > first then redis.call('HSET', KEYS[1], 'last', last, 'status', s[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'meta', ARGV[3]) end
if first == 0 and last > 0 or final then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
if last > first then redis.call('PUBLISH', KEYS[3], text) end
return 'ok'
