-- Read what deciding a batch of messages needs, in one call (worker/store.py, Store.read_context).
-- Read only: lua/apply_decision.lua checks the context again as it writes a decision.
--
-- KEYS  1 .. B the brands' opted-out authors (sets), then per message: its decision, its
--       conversation meta (hash) and, when ordered, its conversation order (hash)
-- ARGV  1 B   2 ordered ('1' | '')   then per message: its brand's number (1..B; only when B > 1), its
--       author id and, when ordered, 'm:<message id>' (its field in the order hash): an argument costs
--       ~0.7k instructions besides its bytes, a concatenation ~1k
-- Returns one string, a line per message: 'decided opted first away seq done', space-separated:
-- decided, opted out, first contact '1' | '0'; away_sent_at ms or '-'; its sequence number in
-- its conversation or '-'; the conversation decided up to ('0' when not ordered).
local nbrands, ordered = tonumber(ARGV[1]), ARGV[2] == '1'
local per = ordered and 3 or 2 -- KEYS a message
local given = (nbrands and nbrands > 1 and 1 or 0) + 1 + (ordered and 1 or 0) -- ARGV a message
local n = (#ARGV - 2) / given
if not nbrands or nbrands < 1 or n ~= math.floor(n) or #KEYS ~= nbrands + per * n then
  return redis.error_reply('context.lua: B + ' .. per .. ' KEYS and ' .. given .. ' ARGV per message')
end
local brand_number = {} -- '1' -> 1, ...: a table lookup a message instead of tonumber()
local authors = {} -- each brand's authors, in the order of its messages
for b = 1, nbrands do
  brand_number[string.format('%d', b)] = b
  authors[b] = {}
end
local brand_of, slot = {}, {} -- each message's brand, and its author's place in authors[brand]
for i = 1, n do
  local arg = 2 + given * (i - 1)
  local b = 1
  if nbrands > 1 then
    b = brand_number[ARGV[arg + 1]] or tonumber(ARGV[arg + 1])
    if not b or b < 1 or b > nbrands then
      return redis.error_reply('context.lua: message ' .. i .. ' names no brand of the call')
    end
    arg = arg + 1
  end
  local list = authors[b]
  list[#list + 1] = ARGV[arg + 1]
  brand_of[i], slot[i] = b, #list
end
-- The opt-outs: one SMISMEMBER a brand for all its authors instead of a SISMEMBER a message
-- (a command from Lua costs ~3k instructions besides its own work; an author in it ~1k),
-- 1,000 authors at most a command (far below what Lua's unpack takes).
local opted = {}
for b = 1, nbrands do
  local list = authors[b]
  if #list <= 1000 then
    opted[b] = #list > 0 and redis.call('SMISMEMBER', KEYS[b], unpack(list)) or {}
  else
    local all = {}
    for first = 1, #list, 1000 do
      local got = redis.call('SMISMEMBER', KEYS[b], unpack(list, first, math.min(first + 999, #list)))
      for j = 1, #got do
        all[first + j - 1] = got[j]
      end
    end
    opted[b] = all
  end
end
local lines = {}
for i = 1, n do
  local at = nbrands + per * (i - 1)
  local decided = redis.call('EXISTS', KEYS[at + 1])
  -- The conversation meta hash exists when one of its fields is set (lua/apply_decision.lua is its
  -- only writer and sets them together with its TTL): a new conversation costs one EXISTS instead of
  -- an HMGET of three fields (an array reply is a Lua table: ~5k instructions more), an existing one
  -- an EXISTS and an HGET (~2k less than the HMGET).
  local first, away = '1', '-'
  if redis.call('EXISTS', KEYS[at + 2]) == 1 then
    first, away = '0', redis.call('HGET', KEYS[at + 2], 'away_sent_at') or '-'
  end
  local seq, done = '-', '0'
  if ordered then
    local order = redis.call('HMGET', KEYS[at + 3], ARGV[2 + given * i], 'done')
    seq, done = order[1] or '-', order[2] or '0'
  end
  -- '1' / '0' spelled out: a Lua number in a concatenation is formatted by sprintf('%.14g')
  lines[i] = (decided == 1 and '1' or '0') .. ' ' .. (opted[brand_of[i]][slot[i]] == 1 and '1' or '0') .. ' '
    .. first .. ' ' .. away .. ' ' .. seq .. ' ' .. done
end
return table.concat(lines, '\n')
