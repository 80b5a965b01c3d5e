-- Append events of the current generation; seqs already stored are skipped, so a
-- retried write never duplicates. A terminal event ends the session. The lease is
-- left to `refresh`, which the owner calls on a timer.
-- KEYS: state, events, event channel.
-- ARGV: generation, retention_ms, metadata ('' = unchanged), payload, n,
--       then n triples (seq, event name or '', data).
-- Returns 'ok', or the reason the write was refused ('stale', 'done', 'error', 'cancelled').
local s = redis.call('HMGET', KEYS[1], 'gen', 'status', 'last')
if s[1] ~= ARGV[1] then return 'stale' end
if s[2] ~= 'active' then return s[2] end
local last = tonumber(s[3])
local first = last
local final = false
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  local seq = tonumber(ARGV[i])
  local name = ARGV[i + 1]
  if seq == last + 1 then
    if name == '' then
      redis.call('XADD', KEYS[2], seq .. '-0', 'd', ARGV[i + 2])
    else
      redis.call('XADD', KEYS[2], seq .. '-0', 'd', ARGV[i + 2], 'n', name)
    end
    last = seq
    final = name == 'done' or name == 'error' or name == 'cancelled'
    if final then s[2] = name end
  elseif seq > last + 1 then
    return redis.error_reply('ERR gap in appended events')
  end
  i = i + 3
end
if last > first then redis.call('HSET', KEYS[1], 'last', last, 'status', s[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'meta', ARGV[3]) end
if first == 0 and last > 0 or final then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
if last > first then redis.call('PUBLISH', KEYS[3], ARGV[4]) end
return 'ok'
