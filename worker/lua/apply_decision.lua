-- Apply decisions and everything each implies, atomically: the only code that writes a
-- decision's effects. Used for a message's first decision and for the finalisation of a
-- decision that waited for an LLM task.
--
-- One call applies one or more decisions, in order, each exactly as if it were applied by a
-- call of its own (a later one sees what an earlier one wrote): 14 KEYS and 27 ARGV per
-- decision, below numbered as for the first (the decision i of a call uses KEYS[14*(i-1)+k]
-- and ARGV[27*(i-1)+k]). The stats counters of the whole call are added at its end, one
-- HINCRBY per distinct field (nothing can read them in between: a script runs alone).
--
-- Redis runs a script without interleaving other commands, so either all of the writes
-- below happen or none do. ARGV[1] says what must hold first:
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
-- KEYS  1 decision            2 decisions index (zset)   3 message -> brands (set)
--       4 review queue (zset)  5 outbox (stream)          6 opted-out authors (set)
--       7 conversation history (list)                     8 conversation meta (hash)
--       9 stats (hash)         10 LLM-pending index (zset)
--      11 conversation order (hash, see lua/order.lua)       12 parked index (zset)
--      13 RQ queue list (a woken successor goes to its front)
--      14 person index (set: 'm:<message id>', 'c:<conversation id>')
-- ARGV  1 condition ('' or the SHA-1 of the expected stored decision)
--       2 decision JSON        3 review member ('brand/message id')
--       4 brand                5 message id               6 decided_at (ms)
--       7 review score ('' = not escalated)
--       8 outbox payloads (JSON array of strings)         9 opt-out op ('add' | 'remove' | '')
--      10 author id           11 history entries (JSON array of strings)
--      12 history max length  13 conversation ttl (s)
--      14 away_sent_at ms ('' = unchanged)
--      15 integer counters (JSON object: field -> amount as a string)
--      16 float counters (JSON object: field -> amount as a string)
--      17 outbox max length
--      18 message created_at ms ('' = leave the conversation's first/last seen alone)
--      19 LLM deadline ms ('' = not pending)
--      20 the message's sequence number in its conversation ('' = unordered)
--      21 opted out when decided: '1' | '0' ('' = no check)
--      22 first contact when decided: '1' | '0' ('' = no check)
--      23 away_sent_at ms when decided: ms | 'none' ('' = no check)
--      24 review queue entry: '' = add or move it, 'XX' = move it only if still queued
--      25 conversation id     26 decision TTL (s)        27 person index TTL (s)
--      KEYS 14 and ARGV 26-27 are not used in 'amend' mode (the TTL is kept)
--
-- The conversation meta hash (KEYS 8) holds only first_seen, last_seen and away_sent_at (this
-- script is its only writer): it exists when one of them is set.
--
-- Returns, for each decision, 1 written, 0 already decided / no longer the expected pending decision,
-- -1 the context the decision was made in (ARGV 21-23) no longer holds: read it again
-- and decide again, -2 (first decision, ordered) an earlier message of the conversation
-- is not decided yet. So a conversation's messages are decided in order, one at a time,
-- each on the state its predecessors left, and opt-outs are checked atomically.
local NKEYS, NARGS = 14, 27

local function apply(K, A, counts)
  local meta = nil -- HMGET of the conversation meta: first_seen, last_seen, away_sent_at
  local function holds(opted, first, away)
    if opted ~= '' and tostring(redis.call('SISMEMBER', K[6], A[10])) ~= opted then
      return false
    end
    if first ~= '' or away ~= '' then
      meta = redis.call('HMGET', K[8], 'first_seen', 'last_seen', 'away_sent_at')
      local exists = (meta[1] or meta[2] or meta[3]) and '1' or '0'
      if first ~= '' and exists ~= (first == '1' and '0' or '1') then
        return false
      end
      if away ~= '' and (meta[3] or 'none') ~= away then
        return false
      end
    end
    return true
  end

  local seq = tonumber(A[20])
  local done, successor = 0, false
  if A[1] == '' then
    if redis.call('EXISTS', K[1]) == 1 then
      return 0
    end
    if not holds(A[21], A[22], A[23]) then
      return -1
    end
    if seq then
      local order = redis.call('HMGET', K[11], 'done', 'p:' .. (seq + 1))
      done, successor = tonumber(order[1] or '0'), order[2]
      if seq > done + 1 then
        return -2
      end
    end
    redis.call('ZADD', K[2], A[6], A[5])
    redis.call('SADD', K[3], A[4])
  elseif A[1] == 'amend' then
    if redis.call('EXISTS', K[1]) == 0 then
      return 0
    end
  else
    local current = redis.call('GET', K[1])
    if not current or redis.sha1hex(current) ~= A[1] then
      return 0
    end
    if not holds(A[21], '', '') then
      return -1
    end
    redis.call('ZREM', K[10], A[3])
  end
  if A[1] == 'amend' then
    redis.call('SET', K[1], A[2], 'KEEPTTL')
  else
    -- personal data (worker/privacy): the decision expires with the brand's retention
    redis.call('SET', K[1], A[2], 'EX', A[26])
  end
  if A[7] ~= '' then
    if A[24] == 'XX' then
      redis.call('ZADD', K[4], 'XX', A[7], A[3])
    else
      redis.call('ZADD', K[4], A[7], A[3])
    end
  end
  for _, payload in ipairs(cjson.decode(A[8])) do
    redis.call('XADD', K[5], 'MAXLEN', '~', A[17], '*', 'message_id', A[5], 'payload', payload)
  end
  if A[9] == 'add' then
    redis.call('SADD', K[6], A[10])
  elseif A[9] == 'remove' then
    redis.call('SREM', K[6], A[10])
  end
  local history = cjson.decode(A[11])
  if #history > 0 then
    redis.call('RPUSH', K[7], unpack(history))
    redis.call('LTRIM', K[7], -tonumber(A[12]), -1)
    redis.call('EXPIRE', K[7], A[13])
  end
  if A[18] ~= '' or A[14] ~= '' then
    local fields = {}
    if A[18] ~= '' then
      if meta == nil then -- not read above: keep a first_seen that is there
        redis.call('HSETNX', K[8], 'first_seen', A[18])
      elseif not meta[1] then
        fields[#fields + 1], fields[#fields + 2] = 'first_seen', A[18]
      end
      fields[#fields + 1], fields[#fields + 2] = 'last_seen', A[18]
    end
    if A[14] ~= '' then
      fields[#fields + 1], fields[#fields + 2] = 'away_sent_at', A[14]
    end
    redis.call('HSET', K[8], unpack(fields))
    redis.call('EXPIRE', K[8], A[13])
  end
  local stats = counts[K[9]]
  if stats == nil then
    stats = {}
    counts[K[9]] = stats
  end
  for field, amount in pairs(cjson.decode(A[15])) do
    stats[field] = (stats[field] or 0) + tonumber(amount)
  end
  for field, amount in pairs(cjson.decode(A[16])) do
    redis.call('HINCRBYFLOAT', K[9], field, amount)
  end
  if A[19] ~= '' then
    redis.call('ZADD', K[10], A[19], A[3])
  end
  if seq and A[1] == '' then
    if seq > done then
      redis.call('HSET', K[11], 'done', seq)
      if successor then -- wake the parked successor (the same as order.lua's wake)
        redis.call('HDEL', K[11], 'p:' .. (seq + 1))
        redis.call('ZREM', K[12], K[11] .. '#' .. (seq + 1))
        redis.call('LPUSH', K[13], successor)
      end
    end
    redis.call('EXPIRE', K[11], A[13])
  end
  -- personal data (worker/privacy): the person index names the message and conversation for
  -- `replyguard forget`, living at least as long as the data it points to (never shortened here)
  if A[1] ~= 'amend' then
    redis.call('SADD', K[14], 'm:' .. A[5], 'c:' .. A[25])
    if redis.call('TTL', K[14]) < tonumber(A[27]) then
      redis.call('EXPIRE', K[14], A[27])
    end
  end
  return 1
end

local n = #KEYS / NKEYS
if n < 1 or n ~= math.floor(n) or #ARGV ~= n * NARGS then
  return redis.error_reply('apply_decision: ' .. NKEYS .. ' KEYS and ' .. NARGS .. ' ARGV per decision')
end
local counts = {} -- stats key -> field -> amount, added once at the end
local results = {}
for i = 0, n - 1 do
  local K, A = {}, {}
  for k = 1, NKEYS do
    K[k] = KEYS[i * NKEYS + k]
  end
  for k = 1, NARGS do
    A[k] = ARGV[i * NARGS + k]
  end
  results[i + 1] = apply(K, A, counts)
end
for key, fields in pairs(counts) do
  for field, amount in pairs(fields) do
    redis.call('HINCRBY', key, field, string.format('%d', amount))
  end
end
return results
