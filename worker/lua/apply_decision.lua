-- Apply decisions and everything each implies, atomically: the only code that writes a
-- decision's effects. Used for a message's first decision and for the finalisation of a
-- decision that waited for an LLM task.
--
-- One call applies one or more decisions, in order, each exactly as if it were applied by a
-- call of its own (a later one sees what an earlier one wrote). The keys shared by the
-- decisions of a call are passed once: the global ones, then 4 per brand, then 6 per decision.
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
--       4 .. 3+B the brands' names   4+B the call's sets of integer counters (a JSON array of
--       objects: field -> amount as a string; each decision names one by its position, spec 12)
--       then per decision, in order: the decision JSON, its spec, its spec[6] outbox payloads,
--       its spec[9] history entries:
-- spec  1 condition ('' first decision | SHA-1 of the expected stored decision | 'amend')
--       2 brand number (1..B)           3 message id            4 decided_at ms
--       5 review score ('' = not escalated)
--       6 how many outbox payloads follow   7 opt-out op ('add' | 'remove' | '')
--       8 author id                     9 how many history entries follow them
--      10 conversation ttl (s)         11 away_sent_at ms ('' = unchanged)
--      12 its integer counters: their set's position (1..) in ARGV 4+B (a call's decisions share a
--         few sets, each decoded once a call)
--      13 float counters (object: field -> amount as a string)
--      14 message created_at ms ('' = leave the conversation's first/last seen alone)
--      15 LLM deadline ms ('' = not pending)
--      16 the message's sequence number in its conversation ('' = unordered)
--      17 opted out when decided: '1' | '0' ('' = no check)
--      18 first contact when decided: '1' | '0' ('' = no check)
--      19 away_sent_at ms when decided: ms | 'none' ('' = no check)
--      20 review queue entry: '' = add or move it, 'XX' = move it only if still queued
--      21 conversation id              22 decision TTL (s)       23 person index TTL (s)
--      (the person index and 22-23 are not used in 'amend' mode: the TTL is kept)
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
-- -1 the context the decision was made in (spec 17-19) no longer holds: read it again
-- and decide again, -2 (first decision, ordered) an earlier message of the conversation
-- is not decided yet. So a conversation's messages are decided in order, one at a time,
-- each on the state its predecessors left, and opt-outs are checked atomically.
local NGLOBAL, NBRAND, NDECISION, SPEC = 4, 4, 7, 23
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


-- Whether the context a decision was made in still holds (spec 17-19, '' = no check), and the
-- conversation meta's HMGET (first_seen, last_seen, away_sent_at) when it was read (else nil).
-- A function of its own, not a closure made for each decision.
local function holds(optout_key, meta_key, author, opted, first, away)
  if opted ~= '' and (redis.call('SISMEMBER', optout_key, author) == 1 and '1' or '0') ~= opted then
    return false
  end
  local meta = nil
  if first ~= '' or away ~= '' then
    meta = redis.call('HMGET', meta_key, 'first_seen', 'last_seen', 'away_sent_at')
    local exists = (meta[1] or meta[2] or meta[3]) and '1' or '0'
    if first ~= '' and exists ~= (first == '1' and '0' or '1') then
      return false
    end
    if away ~= '' and (meta[3] or 'none') ~= away then
      return false
    end
  end
  return true, meta
end

local function apply(k, B, json, A, brand, history_max, counts)
  -- k: the KEYS index before the decision's 7 keys (locals, not a table made for each decision);
  -- B: its brand's 4 keys; A: its spec
  local decision_key, message_key, history_key, meta_key = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local order_key, person_key, open_key = KEYS[k + 5], KEYS[k + 6], KEYS[k + 7]
  local mid = A[3]
  local member = brand .. '/' .. mid
  local ok, meta -- meta: the conversation meta's HMGET when holds() read it

  local condition = A[1]
  local seq = tonumber(A[16])
  local done, successor = 0, false
  if condition == '' then
    -- written first, only if absent (one command instead of EXISTS then SET); taken back below
    -- when a check fails: the script runs alone, so nobody sees it in between
    -- personal data (worker/privacy): the decision expires with the brand's retention
    if not redis.call('SET', decision_key, json, 'NX', 'EX', A[22]) then
      return 0
    end
    ok, meta = holds(B[3], meta_key, A[8], A[17], A[18], A[19])
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
    zadd_later(B[1], A[4], mid)
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
    if not holds(B[3], meta_key, A[8], A[17], '', '') then
      return -1
    end
    redis.call('ZREM', PENDING, member)
  end
  if condition == 'amend' then
    redis.call('SET', decision_key, json, 'KEEPTTL')
  elseif condition ~= '' then
    -- personal data (worker/privacy): the decision expires with the brand's retention
    redis.call('SET', decision_key, json, 'EX', A[22])
  end
  if A[5] ~= '' then
    if A[20] == 'XX' then
      zadd_now(REVIEW)
      redis.call('ZADD', REVIEW, 'XX', A[5], member)
    else
      zadd_later(REVIEW, A[5], member)
    end
  end
  for j = A[6][1], A[6][2] do
    redis.call('XADD', B[2], '*', 'message_id', mid, 'payload', ARGV[j])
    trims[B[2]] = true
  end
  if A[7] == 'add' then
    redis.call('SADD', B[3], A[8])
  elseif A[7] == 'remove' then
    redis.call('SREM', B[3], A[8])
  end
  if A[9][2] >= A[9][1] then
    if redis.call('RPUSH', history_key, unpack(ARGV, A[9][1], A[9][2])) > history_max then
      redis.call('LTRIM', history_key, -history_max, -1)
    end
    redis.call('EXPIRE', history_key, A[10])
  end
  if A[14] ~= '' or A[11] ~= '' then
    local fields = {}
    if A[14] ~= '' then
      if meta == nil then -- not read above: keep a first_seen that is there
        redis.call('HSETNX', meta_key, 'first_seen', A[14])
      elseif not meta[1] then
        fields[#fields + 1], fields[#fields + 2] = 'first_seen', A[14]
      end
      fields[#fields + 1], fields[#fields + 2] = 'last_seen', A[14]
    end
    if A[11] ~= '' then
      fields[#fields + 1], fields[#fields + 2] = 'away_sent_at', A[11]
    end
    redis.call('HSET', meta_key, unpack(fields))
    redis.call('EXPIRE', meta_key, A[10])
  end
  local stats = counts[B[4]]
  if stats == nil then
    stats = {}
    counts[B[4]] = stats
  end
  for field, amount in pairs(A[12]) do
    -- Lua's arithmetic converts the amount's text as tonumber() does, without a call (and a
    -- second conversion: tonumber() converts a string twice)
    stats[field] = (stats[field] or 0) + amount
  end
  for field, amount in pairs(A[13]) do
    redis.call('HINCRBYFLOAT', B[4], field, amount)
  end
  if A[15] ~= '' then
    redis.call('ZADD', PENDING, A[15], member)
  end
  if seq and condition == '' then
    if seq > done then
      redis.call('HSET', order_key, 'done', A[16]) -- the number as the caller wrote it (its decimal digits)
      if successor then -- wake the parked successor (the same as order.lua's wake)
        redis.call('HDEL', order_key, string.format('p:%d', seq + 1))
        redis.call('ZREM', PARKED, string.format('%s#%d', order_key, seq + 1))
        redis.call('LPUSH', QUEUE, successor)
      end
    end
    redis.call('EXPIRE', order_key, A[10])
  end
  -- personal data (worker/privacy): the person index names the message and conversation for
  -- `replyguard forget`, living at least as long as the data it points to (never shortened).
  -- Redis 7: EXPIRE NX sets the TTL of a new index (no TTL yet), else EXPIRE GT lengthens it:
  -- one command for a new person instead of TTL then EXPIRE. Before 7 (the embedded server
  -- is 6.2, which has neither option): TTL, then EXPIRE when it is shorter.
  if condition ~= 'amend' then
    redis.call('SADD', person_key, 'm:' .. mid, 'c:' .. A[21])
    if EXPIRE_NX_GT then
      if redis.call('EXPIRE', person_key, A[23], 'NX') == 0 then
        redis.call('EXPIRE', person_key, A[23], 'GT')
      end
    elseif redis.call('TTL', person_key) < tonumber(A[23]) then
      redis.call('EXPIRE', person_key, A[23])
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
local sets_ok, counter_sets = pcall(cjson.decode, ARGV[first_arg] or '')
if not sets_ok or type(counter_sets) ~= 'table' then
  return fail('ARGV ' .. first_arg .. ' must be a JSON array of the sets of integer counters')
end
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
local specs, jsons, brand_of = {}, {}, {} -- brand_of: each decision's brand number
local at = first_arg -- the argument before the next decision's
for i = 1, n do -- every spec is checked before anything is written
  local ok, A = pcall(cjson.decode, ARGV[at + 2] or '')
  local b = ok and type(A) == 'table' and tonumber(A[2])
  local counters = b and counter_sets[A[12]]
  if not ok or type(A) ~= 'table' or #A ~= SPEC or not brands[b]
      or type(counters) ~= 'table' or type(A[13]) ~= 'table' then
    return fail('decision ' .. i .. ': the spec must be a JSON array of ' .. SPEC
      .. ' fields naming one of the ' .. nbrands .. ' brands')
  end
  local nout, nhistory = tonumber(A[6]), tonumber(A[9])
  if not nout or not nhistory or nout < 0 or nhistory < 0 or at + 2 + nout + nhistory > #ARGV then
    return fail('decision ' .. i .. ': its spec names more outbox and history entries than there are ARGV')
  end
  jsons[i] = ARGV[at + 1]
  A[6] = {at + 3, at + 2 + nout} -- where its entries are in ARGV
  A[9] = {at + 3 + nout, at + 2 + nout + nhistory}
  A[12] = counters
  specs[i], brand_of[i] = A, b
  at = at + 2 + nout + nhistory
end
if at ~= #ARGV then
  return counts_fail()
end
local counts = {} -- stats key -> field -> amount, added once at the end
local results = {}
for i = 1, n do
  local k = first_key + NDECISION * (i - 1)
  local A = specs[i]
  local b = brand_of[i]
  results[i] = apply(k, brands[b], jsons[i], A, ARGV[3 + b], history_max, counts)
end
for _, key in ipairs(zadd_keys) do
  zadd_now(key)
end
for key in pairs(trims) do
  redis.call('XTRIM', key, 'MAXLEN', '~', outbox_max)
end
for key, fields in pairs(counts) do
  for field, amount in pairs(fields) do
    redis.call('HINCRBY', key, field, string.format('%d', amount))
  end
end
return results
