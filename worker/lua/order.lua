-- Per-conversation order (see worker/store.py, "Conversation order"). The conversation's
-- order hash holds:  next = the last sequence number given out,  done = decided up to,
-- m:<message id> = that message's sequence number,  p:<seq> = the RQ job id of a parked
-- message (created, not queued). apply_decision.lua moves `done` forward and wakes the
-- parked successor in the same script that writes the decision, so no wake-up is lost.
--
-- KEYS 1 order hash   2 parked index (zset: '<order key>#<seq>' by park time, ms)
--      3 RQ queue list (woken jobs go to its front)
-- ARGV 1 operation, then per operation:
--   assign  2 message id  3 ttl (s)        -> the message's sequence number (the same one
--                                             for a repeat of the same message id)
--   number  (ingest, a whole batch: other KEYS, below) -> per message 0 (already decided) or
--                                             its sequence number, as assign
--   park    2 seq  3 job id  4 now (ms)  5 ttl (s)
--                                          -> {0, ''} the predecessor is decided: decide now
--                                             {1, previous job id or ''} parked
--   release 2 seq                          -> 1 the parked job was queued (a gap before it skipped),
--                                             0 not parked, or an earlier message is parked too
--   skip    2 message id                   -> 1 `done` moved past a message that will not be
--                                             decided (rejected by the worker), else 0
local op = ARGV[1]

local function wake(seq)  -- queue the parked message with this sequence number, if any
  local job = redis.call('HGET', KEYS[1], 'p:' .. seq)
  if job then
    redis.call('HDEL', KEYS[1], 'p:' .. seq)
    redis.call('ZREM', KEYS[2], KEYS[1] .. '#' .. seq)
    redis.call('LPUSH', KEYS[3], job)
  end
end

local function decided_upto()
  return tonumber(redis.call('HGET', KEYS[1], 'done') or '0')
end

if op == 'assign' then  -- once per message ingested: reads only what it needs
  local seq = redis.call('HGET', KEYS[1], 'm:' .. ARGV[2])
  if not seq then
    seq = redis.call('HINCRBY', KEYS[1], 'next', 1)
    redis.call('HSET', KEYS[1], 'm:' .. ARGV[2], seq)
  end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return tonumber(seq)
elseif op == 'number' then  -- ingest, once per batch: 0 for a message already decided, else its number
  -- KEYS 2i-1 the message's decision, 2i its conversation's order hash; ARGV 2 ttl (s), 2+i its id.
  -- The TTL is set when the order hash is created; after that each decision renews it.
  -- A new message: its number and the counter in one HSET (what HINCRBY next then HSET m:<id> wrote,
  -- one command and one write less: the script runs alone, so nothing comes between read and write).
  local numbers = {}
  for i = 1, #ARGV - 2 do
    if redis.call('EXISTS', KEYS[2 * i - 1]) == 1 then
      numbers[i] = 0
    else
      local field = 'm:' .. ARGV[2 + i]
      local found = redis.call('HMGET', KEYS[2 * i], field, 'next')
      local seq = tonumber(found[1])
      if not seq then
        seq = (tonumber(found[2]) or 0) + 1
        redis.call('HSET', KEYS[2 * i], 'next', seq, field, seq)
        if seq == 1 then
          redis.call('EXPIRE', KEYS[2 * i], ARGV[2])
        end
      end
      numbers[i] = seq
    end
  end
  return numbers
elseif op == 'park' then
  local seq = tonumber(ARGV[2])
  local done = decided_upto()
  if seq <= done + 1 then
    return {0, ''}
  end
  local previous = redis.call('HGET', KEYS[1], 'p:' .. seq) or ''
  redis.call('HSET', KEYS[1], 'p:' .. seq, ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[4], KEYS[1] .. '#' .. seq)
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return {1, previous}
elseif op == 'release' then
  local seq = tonumber(ARGV[2])
  local done = decided_upto()
  local job = redis.call('HGET', KEYS[1], 'p:' .. seq)
  if not job then
    redis.call('ZREM', KEYS[2], KEYS[1] .. '#' .. seq)
    return 0
  end
  for k = done + 1, math.min(seq - 1, done + 10000) do
    if redis.call('HEXISTS', KEYS[1], 'p:' .. k) == 1 then
      return 0  -- an earlier message is parked: it goes first, and wakes this one
    end
  end
  if seq - 1 > done then
    redis.call('HSET', KEYS[1], 'done', seq - 1)
  end
  wake(seq)
  return 1
elseif op == 'skip' then
  local seq = tonumber(redis.call('HGET', KEYS[1], 'm:' .. ARGV[2]) or '0')
  local done = decided_upto()
  if seq ~= done + 1 then
    return 0
  end
  redis.call('HSET', KEYS[1], 'done', seq)
  wake(seq + 1)
  return 1
end
return redis.error_reply('order.lua: unknown operation ' .. tostring(op))
