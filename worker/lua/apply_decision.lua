-- Apply one decision and everything it implies, atomically: the only code that writes a
-- decision's effects. Used for a message's first decision and for the finalisation of a
-- decision that waited for an LLM task.
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
--      14 (KEYS) person index; ARGV 25-27 and KEYS 14 are absent in 'amend' mode (the TTL is kept)
--
-- Returns 1 written, 0 already decided / no longer the expected pending decision,
-- -1 the context the decision was made in (ARGV 21-23) no longer holds: read it again
-- and decide again, -2 (first decision, ordered) an earlier message of the conversation
-- is not decided yet. So a conversation's messages are decided in order, one at a time,
-- each on the state its predecessors left, and opt-outs are checked atomically.
local function holds(opted, first, away)
  if opted ~= '' and tostring(redis.call('SISMEMBER', KEYS[6], ARGV[10])) ~= opted then
    return false
  end
  if first ~= '' and tostring(redis.call('EXISTS', KEYS[8])) ~= (first == '1' and '0' or '1') then
    return false
  end
  if away ~= '' and (redis.call('HGET', KEYS[8], 'away_sent_at') or 'none') ~= away then
    return false
  end
  return true
end

local seq = tonumber(ARGV[20])
local done = 0
if ARGV[1] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
  end
  if not holds(ARGV[21], ARGV[22], ARGV[23]) then
    return -1
  end
  if seq then
    done = tonumber(redis.call('HGET', KEYS[11], 'done') or '0')
    if seq > done + 1 then
      return -2
    end
  end
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
  redis.call('SADD', KEYS[3], ARGV[4])
elseif ARGV[1] == 'amend' then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return 0
  end
else
  local current = redis.call('GET', KEYS[1])
  if not current or redis.sha1hex(current) ~= ARGV[1] then
    return 0
  end
  if not holds(ARGV[21], '', '') then
    return -1
  end
  redis.call('ZREM', KEYS[10], ARGV[3])
end
if ARGV[1] == 'amend' then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[2])
end
if ARGV[7] ~= '' then
  if ARGV[24] == 'XX' then
    redis.call('ZADD', KEYS[4], 'XX', ARGV[7], ARGV[3])
  else
    redis.call('ZADD', KEYS[4], ARGV[7], ARGV[3])
  end
end
for _, payload in ipairs(cjson.decode(ARGV[8])) do
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[17], '*', 'message_id', ARGV[5], 'payload', payload)
end
if ARGV[9] == 'add' then
  redis.call('SADD', KEYS[6], ARGV[10])
elseif ARGV[9] == 'remove' then
  redis.call('SREM', KEYS[6], ARGV[10])
end
local history = cjson.decode(ARGV[11])
if #history > 0 then
  for _, entry in ipairs(history) do
    redis.call('RPUSH', KEYS[7], entry)
  end
  redis.call('LTRIM', KEYS[7], -tonumber(ARGV[12]), -1)
  redis.call('EXPIRE', KEYS[7], ARGV[13])
end
if ARGV[18] ~= '' then
  redis.call('HSETNX', KEYS[8], 'first_seen', ARGV[18])
  redis.call('HSET', KEYS[8], 'last_seen', ARGV[18])
end
if ARGV[14] ~= '' then
  redis.call('HSET', KEYS[8], 'away_sent_at', ARGV[14])
end
if ARGV[18] ~= '' or ARGV[14] ~= '' then
  redis.call('EXPIRE', KEYS[8], ARGV[13])
end
for field, amount in pairs(cjson.decode(ARGV[15])) do
  redis.call('HINCRBY', KEYS[9], field, amount)
end
for field, amount in pairs(cjson.decode(ARGV[16])) do
  redis.call('HINCRBYFLOAT', KEYS[9], field, amount)
end
if ARGV[19] ~= '' then
  redis.call('ZADD', KEYS[10], ARGV[19], ARGV[3])
end
if seq and ARGV[1] == '' then
  if seq > done then
    redis.call('HSET', KEYS[11], 'done', seq)
    local job = redis.call('HGET', KEYS[11], 'p:' .. (seq + 1))
    if job then  -- wake the parked successor (the same as order.lua's wake)
      redis.call('HDEL', KEYS[11], 'p:' .. (seq + 1))
      redis.call('ZREM', KEYS[12], KEYS[11] .. '#' .. (seq + 1))
      redis.call('LPUSH', KEYS[13], job)
    end
  end
  redis.call('EXPIRE', KEYS[11], ARGV[13])
end
-- personal data (worker/privacy): the decision expires with the brand's retention, and the
-- person index names the message and conversation for `replyguard forget`, living at least
-- as long as the data it points to (never shortened here)
if ARGV[1] ~= 'amend' then
  redis.call('EXPIRE', KEYS[1], ARGV[26])
  redis.call('SADD', KEYS[14], 'm:' .. ARGV[5], 'c:' .. ARGV[25])
  if redis.call('TTL', KEYS[14]) < tonumber(ARGV[27]) then
    redis.call('EXPIRE', KEYS[14], ARGV[27])
  end
end
return 1
