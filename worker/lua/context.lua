-- Read what deciding a batch of messages needs, in one call (worker/store.py, Store.read_context).
-- Read only: lua/apply_decision.lua checks the context again as it writes a decision.
--
-- KEYS  1 .. B the brands' opted-out authors (sets), then per message: its decision, its
--       conversation meta (hash) and, when ordered, its conversation order (hash)
-- ARGV  1 B   2 ordered ('1' | '')   then per message 3: its brand's number (1..B), author id, message id
-- Returns one string, a line per message: 'decided opted first away seq done', space-separated:
-- decided, opted out, first contact '1' | '0'; away_sent_at ms or '-'; its sequence number in
-- its conversation or '-'; the conversation decided up to ('0' when not ordered).
local nbrands, ordered = tonumber(ARGV[1]), ARGV[2] == '1'
local per = ordered and 3 or 2
local n = (#ARGV - 2) / 3
if not nbrands or n ~= math.floor(n) or #KEYS ~= nbrands + per * n then
  return redis.error_reply('context.lua: B + ' .. per .. ' KEYS and 3 ARGV per message')
end
local brand_number = {} -- '1' -> 1, ...: a table lookup a message instead of tonumber()
for b = 1, nbrands do
  brand_number[string.format('%d', b)] = b
end
local lines = {}
for i = 1, n do
  local at, arg = nbrands + per * (i - 1), 2 + 3 * (i - 1)
  local b = brand_number[ARGV[arg + 1]] or tonumber(ARGV[arg + 1])
  if not b or b < 1 or b > nbrands then
    return redis.error_reply('context.lua: message ' .. i .. ' names no brand of the call')
  end
  local decided = redis.call('EXISTS', KEYS[at + 1])
  local opted = redis.call('SISMEMBER', KEYS[b], ARGV[arg + 2])
  local meta = redis.call('HMGET', KEYS[at + 2], 'first_seen', 'last_seen', 'away_sent_at')
  local seq, done = '-', '0'
  if ordered then
    local order = redis.call('HMGET', KEYS[at + 3], 'm:' .. ARGV[arg + 3], 'done')
    seq, done = order[1] or '-', order[2] or '0'
  end
  -- '1' / '0' spelled out: a Lua number in a concatenation is formatted by sprintf('%.14g')
  lines[i] = (decided == 1 and '1' or '0') .. ' ' .. (opted == 1 and '1' or '0') .. ' '
    .. ((meta[1] or meta[2] or meta[3]) and '0' or '1') .. ' ' .. (meta[3] or '-') .. ' ' .. seq .. ' ' .. done
end
return table.concat(lines, '\n')
