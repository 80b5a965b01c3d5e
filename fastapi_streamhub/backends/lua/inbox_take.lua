-- The messages of many generations' inboxes after the id each owner read last, in the
-- order they were posted. What the owner read already (up to that id) is dropped: an inbox
-- holds only what its owner has not read yet.
-- KEYS: per read, its state and inbox. ARGV: limit, then per read its generation and the
-- id it read last ('': none yet).
-- Returns per read 0 when its generation is no longer the key's, else a flat list of
-- id, kind, payload, source.
local limit = tonumber(ARGV[1])
local replies = {}
for i = 1, #KEYS / 2 do
  local state, inbox = KEYS[2 * i - 1], KEYS[2 * i]
  local generation, after = ARGV[2 * i], ARGV[2 * i + 1]
  local s = redis.call('HMGET', state, 'gen', 'ibx')
  if s[1] ~= generation then
    replies[i] = 0
  elseif s[2] ~= generation then
    replies[i] = {}
  else
    local from = '-'
    if after ~= '' then
      from = '(' .. after
      redis.call('XTRIM', inbox, 'MINID', after)
      redis.call('XDEL', inbox, after)
    end
    local flat = {}
    for _, entry in ipairs(redis.call('XRANGE', inbox, from, '+', 'COUNT', limit)) do
      local fields = {}
      for j = 1, #entry[2], 2 do fields[entry[2][j]] = entry[2][j + 1] end
      flat[#flat + 1] = entry[1]
      flat[#flat + 1] = fields['k']
      flat[#flat + 1] = fields['p']
      flat[#flat + 1] = fields['s']
    end
    replies[i] = flat
  end
end
return replies
