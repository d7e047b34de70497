-- Apply decisions and everything each implies, atomically: the only code that writes a
-- decision's effects. Used for a message's first decision and for the finalisation of a
-- decision that waited for an LLM task.
--
-- One call applies one or more decisions, in order, each exactly as if it were applied by a
-- call of its own (a later one sees what an earlier one wrote). The keys shared by the
-- decisions of a call are passed once: the global ones, then 4 per brand, then 7 per decision;
-- so is what its decisions have in common (their shapes, below).
-- Each decision is its JSON as stored, its spec (one JSON array, below), then its outbox payloads
-- and its history entries as arguments of their own (not inside the spec: no JSON escaping twice).
-- The stats counters of the whole call are added at its end, one HINCRBY per distinct field
-- (nothing can read them in between: a script runs alone).
--
-- KEYS  1 review queue (zset)   2 LLM-pending index (zset)   3 parked index (zset)
--       4 RQ queue list (a woken successor goes to its front)
--       then per brand b (b = 1..B):   4+4(b-1)+ 1 decisions index (zset)  2 outbox (stream)
--                                                3 opted-out authors (set)  4 stats (hash)
--       then per decision i (i = 1..n): 4+4B+7(i-1)+ 1 decision  2 message -> brands (set)
--            3 conversation history (list)  4 conversation meta (hash)
--            5 conversation order (hash, see lua/order.lua)
--            6 person index (set: 'm:<message id>', 'c:<conversation id>')
--            7 the conversation's open SLA timers (set, read only; '' = not read)
-- ARGV  1 B (brands in this call)  2 history max length  3 outbox max length
--       4 .. 3+B the brands' names   4+B the call's shapes (a JSON array of arrays, below): what
--       its decisions have in common, each distinct one passed once a call (on the benchmark's
--       traffic ~10 shapes for 32 decisions: cjson decodes a field for ~0.8k instructions)
--       then per decision, in order: the decision JSON, its spec (a JSON array, below), its
--       shape's S4 outbox payloads, its shape's S6 history entries:
-- shape S1 condition ('' first decision | SHA-1 of the expected stored decision | 'amend')
--       S2 brand number (1..B)          S3 decided_at ms
--       S4 how many outbox payloads follow   S5 opt-out op ('add' | 'remove' | '')
--       S6 how many history entries follow them     S7 conversation ttl (s)
--       S8 integer counters, S9 float counters (objects: field -> amount as a string)
--       S10 opted out when decided: '1' | '0' ('' = no check)
--       S11 first contact when decided: '1' | '0' ('' = no check)
--       S12 away_sent_at ms when decided: ms | 'none' ('' = no check)
--       S13 review queue entry: '' = add or move it, 'XX' = move it only if still queued
--       S14 decision TTL (s)            S15 person index TTL (s)
--       (the person index and S14-S15 are not used in 'amend' mode: the TTL is kept)
-- spec  1 its shape's position (1..) in ARGV 4+B    2 message id
--       3 review score ('' = not escalated)         4 author id
--       5 away_sent_at ms ('' = unchanged)
--       6 message created_at ms ('' = leave the conversation's first/last seen alone)
--       7 LLM deadline ms ('' = not pending)
--       8 the message's sequence number in its conversation ('' = unordered)
--       9 'c:<conversation id>' (its member in the person index: a concatenation in Lua is ~1k instructions)
--      Numbers are passed as strings (a Lua number would lose digits of a review score).
--
-- The condition says what must hold first:
--   ''      first decision: the decision key must not exist (a second call for the same
--           (brand, message id) is a no-op returning 0)
--   sha1    finalisation: the stored decision must still be the one (pending) that the
--           caller read, whose SHA-1 this is (whoever finalises first wins; the other gets 0)
--   'amend' a stored decision changed after the fact (an SLA breach or a person re-routes its
--           escalation, a delivery's outcome and the escalation a failed one needs): the
--           decision must exist. Run inside the caller's MULTI, which WATCHes the decision key
--           (the caller's own records, such as the SLA timer or the delivery's idempotency
--           record, are written in the same transaction).
--
-- The conversation meta hash holds only first_seen, last_seen and away_sent_at (this script
-- is its only writer): it exists when one of them is set.
--
-- Returns, for each decision, 1 written (a first decision whose key 7 names a non-empty set: the array
-- {1, the set's members}, read as it is written, so that the caller's SLA tracker needs no read of
-- its own), 0 already decided / no longer the expected pending decision,
-- -1 the context the decision was made in (shape S10-S12) no longer holds: read it again
-- and decide again, -2 (first decision, ordered) an earlier message of the conversation
-- is not decided yet. So a conversation's messages are decided in order, one at a time,
-- each on the state its predecessors left, and opt-outs are checked atomically.
local NGLOBAL, NBRAND, NDECISION, SHAPE, SPEC = 4, 4, 7, 15, 9
local REVIEW, PENDING, PARKED, QUEUE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- EXPIRE's NX and GT options (Redis 7.0; redis.REDIS_VERSION_NUM is new in 7.0 too)
local EXPIRE_NX_GT = (tonumber(redis.REDIS_VERSION_NUM) or 0) >= 0x070000

-- Sorted-set members a call adds, written with one ZADD a key at its end (or before anything else
-- touches that key): key -> {score, member, ...} in the order they were added. The decisions index
-- and the review queue are read by nothing in this script, so each decision still sees what the
-- earlier ones wrote, and the stored result is the same as one ZADD a decision (a member added
-- twice keeps its last score either way); each ZADD a script runs is propagated to the AOF as a
-- command of its own, and one command a key instead of one a decision is ~10k Redis instructions
-- less a decision (docs/throughput-notes.md).
local zadds, zadd_keys = {}, {}
-- The outbox streams a call added to, each trimmed once at its end (XTRIM MAXLEN ~) instead of by
-- every XADD's own MAXLEN ~ (three arguments fewer in each XADD, and in its AOF record): nothing in
-- this script reads them, and approximate trimming removes whole nodes from the front while what is
-- left is still at least the cap, so one trim after the call's entries leaves the entries one trim
-- after each would (docs/throughput-notes.md; XTRIM writes nothing to the AOF when it removes nothing).
local trims = {}

local function zadd_now(key) -- before a command of this script reads or changes `key` otherwise
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


-- Whether the context a decision was made in still holds (shape S10-S12, '' = no check), and what
-- it read of the conversation meta: nil (not read), false (the hash does not exist) or
-- {first_seen, away_sent_at}. The hash exists when one of its fields is set (this script is its only
-- writer), so a new conversation costs one EXISTS instead of an HMGET of three fields (an array
-- reply becomes a Lua table: ~5k instructions more). A function of its own, not a closure made for
-- each decision.
local function holds(optout_key, meta_key, author, opted, first, away)
  if opted ~= '' and (redis.call('SISMEMBER', optout_key, author) == 1 and '1' or '0') ~= opted then
    return false
  end
  local meta = nil
  if first ~= '' or away ~= '' then
    meta = redis.call('EXISTS', meta_key) == 1 and redis.call('HMGET', meta_key, 'first_seen', 'away_sent_at')
    if first ~= '' and (meta and '0' or '1') ~= first then
      return false
    end
    if away ~= '' and (meta and meta[2] or 'none') ~= away then
      return false
    end
  end
  return true, meta
end

local function apply(k, B, at, S, O, brand, history_max, counts)
  -- k: the KEYS index before the decision's 7 keys (locals, not a table made for each decision);
  -- B: its brand's 4 keys; at: the ARGV index before its JSON (then its spec, its outbox payloads
  -- and its history entries); S: its shape; O: its spec
  local json = ARGV[at + 1]
  local decision_key, message_key, history_key, meta_key = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local order_key, person_key, open_key = KEYS[k + 5], KEYS[k + 6], KEYS[k + 7]
  local mid = O[2]
  local member -- '<brand>/<message id>', made when a sorted set needs it
  local ok, meta -- meta: the conversation meta's HMGET when holds() read it

  local condition = S[1]
  local seq = tonumber(O[8])
  local done, successor = 0, false
  if condition == '' then
    -- written first, only if absent (one command instead of EXISTS then SET); taken back below
    -- when a check fails: the script runs alone, so nobody sees it in between
    -- personal data (worker/privacy): the decision expires with the brand's retention
    if not redis.call('SET', decision_key, json, 'NX', 'EX', S[14]) then
      return 0
    end
    ok, meta = holds(B[3], meta_key, O[4], S[10], S[11], S[12])
    if not ok then
      redis.call('DEL', decision_key)
      return -1
    end
    if seq then
      -- string.format('%d'): a Lua number concatenated as it is is formatted by sprintf('%.14g')
      local order = redis.call('HMGET', order_key, 'done', string.format('p:%d', seq + 1))
      done, successor = order[1] and tonumber(order[1]) or 0, order[2]
      if seq > done + 1 then
        redis.call('DEL', decision_key)
        return -2
      end
    end
    zadd_later(B[1], S[3], mid)
    redis.call('SADD', message_key, brand)
  elseif condition == 'amend' then
    if redis.call('EXISTS', decision_key) == 0 then
      return 0
    end
  else
    local current = redis.call('GET', decision_key)
    if not current or redis.sha1hex(current) ~= condition then
      return 0
    end
    if not holds(B[3], meta_key, O[4], S[10], '', '') then
      return -1
    end
    member = brand .. '/' .. mid
    redis.call('ZREM', PENDING, member)
  end
  if condition == 'amend' then
    redis.call('SET', decision_key, json, 'KEEPTTL')
  elseif condition ~= '' then
    -- personal data (worker/privacy): the decision expires with the brand's retention
    redis.call('SET', decision_key, json, 'EX', S[14])
  end
  if O[3] ~= '' then
    member = member or brand .. '/' .. mid
    if S[13] == 'XX' then
      zadd_now(REVIEW)
      redis.call('ZADD', REVIEW, 'XX', O[3], member)
    else
      zadd_later(REVIEW, O[3], member)
    end
  end
  local nout, nhistory = S[4], S[6]
  for j = at + 3, at + 2 + nout do
    redis.call('XADD', B[2], '*', 'message_id', mid, 'payload', ARGV[j])
  end
  if nout > 0 then
    trims[B[2]] = true
  end
  if S[5] == 'add' then
    redis.call('SADD', B[3], O[4])
  elseif S[5] == 'remove' then
    redis.call('SREM', B[3], O[4])
  end
  if nhistory > 0 then
    if redis.call('RPUSH', history_key, unpack(ARGV, at + 3 + nout, at + 2 + nout + nhistory)) > history_max then
      redis.call('LTRIM', history_key, -history_max, -1)
    end
    redis.call('EXPIRE', history_key, S[7])
  end
  local seen, away_sent = O[6], O[5]
  if seen ~= '' or away_sent ~= '' then
    -- one HSET of the fields that change, spelled out for each case (no table made for it)
    local first_seen = false
    if seen ~= '' then
      if meta == nil then -- not read above: keep a first_seen that is there
        redis.call('HSETNX', meta_key, 'first_seen', seen)
      else
        first_seen = not (meta and meta[1])
      end
    end
    if seen == '' then
      redis.call('HSET', meta_key, 'away_sent_at', away_sent)
    elseif away_sent == '' then
      if first_seen then
        redis.call('HSET', meta_key, 'first_seen', seen, 'last_seen', seen)
      else
        redis.call('HSET', meta_key, 'last_seen', seen)
      end
    elseif first_seen then
      redis.call('HSET', meta_key, 'first_seen', seen, 'last_seen', seen, 'away_sent_at', away_sent)
    else
      redis.call('HSET', meta_key, 'last_seen', seen, 'away_sent_at', away_sent)
    end
    redis.call('EXPIRE', meta_key, S[7])
  end
  -- the integer counters: how many of the brand's decisions have each of the call's shapes, added
  -- up at the end (a number a decision instead of a loop over its counters)
  local uses = counts[B[4]]
  if uses == nil then
    uses = {}
    counts[B[4]] = uses
  end
  uses[O[1]] = (uses[O[1]] or 0) + 1
  for field, amount in pairs(S[9]) do
    redis.call('HINCRBYFLOAT', B[4], field, amount)
  end
  if O[7] ~= '' then
    redis.call('ZADD', PENDING, O[7], member or brand .. '/' .. mid)
  end
  if seq and condition == '' then
    if seq > done then
      redis.call('HSET', order_key, 'done', O[8]) -- the number as the caller wrote it (its decimal digits)
      if successor then -- wake the parked successor (the same as order.lua's wake)
        redis.call('HDEL', order_key, string.format('p:%d', seq + 1))
        redis.call('ZREM', PARKED, string.format('%s#%d', order_key, seq + 1))
        redis.call('LPUSH', QUEUE, successor)
      end
    end
    redis.call('EXPIRE', order_key, S[7])
  end
  -- personal data (worker/privacy): the person index names the message and conversation for
  -- `replyguard forget`, living at least as long as the data it points to (never shortened).
  -- Redis 7: EXPIRE NX sets the TTL of a new index (no TTL yet), else EXPIRE GT lengthens it:
  -- one command for a new person instead of TTL then EXPIRE. Before 7 (the embedded server
  -- is 6.2, which has neither option): TTL, then EXPIRE when it is shorter.
  if condition ~= 'amend' then
    redis.call('SADD', person_key, 'm:' .. mid, O[9])
    if EXPIRE_NX_GT then
      if redis.call('EXPIRE', person_key, S[15], 'NX') == 0 then
        redis.call('EXPIRE', person_key, S[15], 'GT')
      end
    elseif redis.call('TTL', person_key) < tonumber(S[15]) then
      redis.call('EXPIRE', person_key, S[15])
    end
  end
  if condition == '' and open_key ~= '' then
    local open = redis.call('SMEMBERS', open_key)
    if #open > 0 then
      table.insert(open, 1, 1)
      return open
    end
  end
  return 1
end

local function fail(message)
  return redis.error_reply('apply_decision: ' .. message)
end

local nbrands, history_max, outbox_max = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if not nbrands or nbrands < 1 or not history_max or not tonumber(outbox_max) then
  return fail('ARGV 1-3 must be the number of brands, the history and the outbox lengths')
end
local first_key, first_arg = NGLOBAL + NBRAND * nbrands, 4 + nbrands
local n = (#KEYS - first_key) / NDECISION
local function counts_fail()
  return fail(NGLOBAL .. ' + ' .. NBRAND .. ' per brand + ' .. NDECISION .. ' per decision KEYS, and '
    .. '4 + 1 per brand + 2 per decision ARGV and its entries (got ' .. #KEYS .. ' KEYS, ' .. #ARGV .. ' ARGV, '
    .. nbrands .. ' brands)')
end
if n < 1 or n ~= math.floor(n) then
  return counts_fail()
end
local brands = {}
for b = 1, nbrands do
  brands[b] = {KEYS[NGLOBAL + NBRAND * (b - 1) + 1], KEYS[NGLOBAL + NBRAND * (b - 1) + 2],
    KEYS[NGLOBAL + NBRAND * (b - 1) + 3], KEYS[NGLOBAL + NBRAND * (b - 1) + 4]}
end
local shapes_ok, shapes = pcall(cjson.decode, ARGV[first_arg] or '')
if not shapes_ok or type(shapes) ~= 'table' then
  return fail('ARGV ' .. first_arg .. ' must be a JSON array of the shapes of the decisions')
end
for j, S in ipairs(shapes) do -- every shape and spec is checked before anything is written
  local nout, nhistory = type(S) == 'table' and tonumber(S[4]), type(S) == 'table' and tonumber(S[6])
  if type(S) ~= 'table' or #S ~= SHAPE or not brands[tonumber(S[2])] or type(S[8]) ~= 'table'
      or type(S[9]) ~= 'table' or not nout or not nhistory or nout < 0 or nhistory < 0 then
    return fail('shape ' .. j .. ': must be a JSON array of ' .. SHAPE .. ' fields naming one of the '
      .. nbrands .. ' brands')
  end
  S[2], S[4], S[6] = tonumber(S[2]), nout, nhistory
end
local specs, starts = {}, {} -- starts: the ARGV index before each decision's JSON
local at = first_arg -- the argument before the next decision's
for i = 1, n do
  local ok, O = pcall(cjson.decode, ARGV[at + 2] or '')
  local S = ok and type(O) == 'table' and shapes[O[1]]
  if not S or #O ~= SPEC then
    return fail('decision ' .. i .. ': the spec must be a JSON array of ' .. SPEC
      .. ' fields naming one of the ' .. #shapes .. ' shapes')
  end
  if at + 2 + S[4] + S[6] > #ARGV then
    return fail('decision ' .. i .. ': its shape names more outbox and history entries than there are ARGV')
  end
  specs[i], starts[i] = O, at
  at = at + 2 + S[4] + S[6]
end
if at ~= #ARGV then
  return counts_fail()
end
local counts = {} -- stats key -> shape number -> how many of the call's decisions have it
local results = {}
for i = 1, n do
  local O = specs[i]
  local S = shapes[O[1]]
  local b = S[2]
  results[i] = apply(first_key + NDECISION * (i - 1), brands[b], starts[i], S, O, ARGV[3 + b], history_max, counts)
end
for _, key in ipairs(zadd_keys) do
  zadd_now(key)
end
for key in pairs(trims) do
  redis.call('XTRIM', key, 'MAXLEN', '~', outbox_max)
end
for key, uses in pairs(counts) do
  local totals = {}
  for shape, times in pairs(uses) do
    for field, amount in pairs(shapes[shape][8]) do
      -- Lua's arithmetic converts the amount's text as tonumber() does, without a call (and a
      -- second conversion: tonumber() converts a string twice)
      totals[field] = (totals[field] or 0) + amount * times
    end
  end
  for field, amount in pairs(totals) do
    redis.call('HINCRBY', key, field, string.format('%d', amount))
  end
end
return results
