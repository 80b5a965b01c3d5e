-- End each generation that no reader has followed for its window: stored `cancelled`
-- event (data given), status, and the cancel signal, as a cancel would. A reader is
-- counted until the 'seen' time readers' instances record; before any, from the start.
-- KEYS: per generation, its state, events, event channel and control channel.
-- ARGV: data, retention_ms, then per generation its id and window_ms.
-- Returns per generation 1 if it was ended here, else 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ended = {}
for i = 1, #KEYS / 4 do
  local state, events, notify, control = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local generation, window = ARGV[2 * i + 1], tonumber(ARGV[2 * i + 2])
  local s = redis.call('HMGET', state, 'gen', 'status', 'last', 'seen', 'started', 'ret')
  ended[i] = 0
  if s[1] == generation and s[2] == 'active'
      and now > tonumber(s[4] or s[5] or 0) + window then
    local seq = tonumber(s[3]) + 1
    local keep = s[6] or ARGV[2]
    redis.call('XADD', events, seq .. '-0', 'd', ARGV[1], 'n', 'cancelled')
    redis.call('HSET', state, 'status', 'cancelled', 'last', seq, 'ended', now)
    redis.call('PEXPIRE', state, keep)
    redis.call('PEXPIRE', events, keep)
    redis.call('PUBLISH', notify, 'E\n' .. generation .. '\n' .. seq .. '\ncancelled\n' .. ARGV[1])
    redis.call('PUBLISH', control, 'C\ncancel\n' .. generation)
    ended[i] = 1
  end
end
return ended
