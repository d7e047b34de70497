-- Start SLA timers (worker/sla/tracker.py, SlaTracker.start_many), each at most once however
-- many workers try: a timer is written only if its key does not exist (SET NX), and with it,
-- in the same atomic step, its entries in the due index, the brand's timer index and the
-- conversation's open set, and its `sla.started` event. No decision effect is written here.
--
-- The keys and values shared by the timers of a call are passed once: the due index, then 2
-- keys per brand, then 2 keys per timer; 3 + B arguments, then 6 per timer (5 when B is 1: no brand
-- number; an argument costs ~0.7k instructions besides its bytes).
-- KEYS  1 due index (zset)
--       then per brand b (b = 1..B): 1+2(b-1)+ 1 the brand's timers (zset)
--                                             2 the brand's SLA events (stream)
--       then per timer i (i = 1..n): 1+2B+2(i-1)+ 1 the timer (string)
--                                                 2 the conversation's open timers (set)
-- ARGV  1 B (brands in this call)  2 timers' TTL (s)  3 events stream max length (approximate)
--       4 .. 3+B the brands' names
--       then per timer: its brand number (1..B; only when B > 1), then its timer JSON,
--            next step (ms; '' = none), message id, started (ms), event payload (JSON)
-- A new timer is open: it joins its conversation's open set.
-- The due index member is '<brand>/<message id>'.
-- Returns, for each timer, 1 started or 0 it had one already.
local NTIMERKEYS = 2
local nbrands = tonumber(ARGV[1])
if not nbrands or nbrands < 1 or not tonumber(ARGV[2]) or not tonumber(ARGV[3]) then
  return redis.error_reply('sla_start: ARGV 1-3 must be the number of brands, the TTL and the events length')
end
local o = nbrands > 1 and 1 or 0 -- a timer's arguments after its brand number (none when B is 1)
local NTIMERARGS = 5 + o
local first_key, first_arg = 1 + 2 * nbrands, 3 + nbrands
local n = (#KEYS - first_key) / NTIMERKEYS
if n < 1 or n ~= math.floor(n) or #ARGV ~= first_arg + n * NTIMERARGS then
  return redis.error_reply('sla_start: 1 + 2 per brand + ' .. NTIMERKEYS .. ' per timer KEYS and 3 + 1 per brand + '
    .. NTIMERARGS .. ' per timer ARGV')
end
local brand_of = {} -- each timer's brand number
for i = 0, n - 1 do -- every brand number is checked before anything is written
  local b = o == 0 and 1 or tonumber(ARGV[first_arg + i * NTIMERARGS + 1])
  if not b or b < 1 or b > nbrands or b ~= math.floor(b) then
    return redis.error_reply('sla_start: timer ' .. (i + 1) .. ' names no brand of the call')
  end
  brand_of[i] = b
end
local ttl, maxlen = ARGV[2], ARGV[3]
-- The due index's and the timer indexes' new members are added with one ZADD a key at the end
-- (before that, only when a ZREM of the due index comes): nothing here reads them, and each ZADD
-- a script runs is a command of its own in the AOF (lua/apply_decision.lua does the same).
local zadds, zadd_keys = {}, {}
local function zadd_now(key)
  local pairs_of = zadds[key]
  if pairs_of ~= nil and #pairs_of > 0 then
    redis.call('ZADD', key, unpack(pairs_of))
    zadds[key] = {}
  end
end
local function zadd_later(key, score, member)
  local pairs_of = zadds[key]
  if pairs_of == nil then
    pairs_of = {}
    zadds[key] = pairs_of
    zadd_keys[#zadd_keys + 1] = key
  end
  pairs_of[#pairs_of + 1], pairs_of[#pairs_of + 2] = score, member
  if #pairs_of >= 1000 then -- far below what Lua's unpack takes
    zadd_now(key)
  end
end
-- trims: the events streams written, each trimmed once at the end (as lua/apply_decision.lua's outbox)
local results, trims = {}, {}
for i = 0, n - 1 do
  -- a: so that a + 2 .. a + 6 are its timer JSON .. event payload
  local k, a = first_key + i * NTIMERKEYS, first_arg + i * NTIMERARGS + o - 1
  local b = brand_of[i]
  local timers, events = KEYS[2 * b], KEYS[2 * b + 1]
  local mid = ARGV[a + 4]
  if redis.call('SET', KEYS[k + 1], ARGV[a + 2], 'NX', 'EX', ttl) then
    local member = ARGV[3 + b] .. '/' .. mid
    if ARGV[a + 3] ~= '' then
      zadd_later(KEYS[1], ARGV[a + 3], member)
    else
      zadd_now(KEYS[1])
      redis.call('ZREM', KEYS[1], member)
    end
    zadd_later(timers, ARGV[a + 5], mid)
    redis.call('SADD', KEYS[k + 2], mid)
    redis.call('XADD', events, '*', 'type', 'sla.started', 'notify', '0', 'payload', ARGV[a + 6])
    trims[events] = true
    results[i + 1] = 1
  else
    results[i + 1] = 0
  end
end
for _, key in ipairs(zadd_keys) do
  zadd_now(key)
end
for key in pairs(trims) do
  redis.call('XTRIM', key, 'MAXLEN', '~', maxlen)
end
return results
