-- Persist one decision and everything it implies, atomically and at most once.
--
-- Redis runs a script without interleaving other commands, so either all of the
-- writes below happen or none do; and the EXISTS check makes a second call for
-- the same (brand, message id) a no-op that returns 0.
--
-- KEYS  1 decision           2 decisions index (zset)   3 message -> brands (set)
--       4 review queue (zset) 5 outbox (stream)          6 opted-out authors (set)
--       7 conversation history (list)                    8 conversation meta (hash)
--       9 stats (hash)          10 LLM-pending index (zset)
-- ARGV  1 decision JSON       2 review member            3 brand
--       4 message id          5 decided_at (ms)          6 review score ('' = not escalated)
--       7 outbox payloads (JSON array of strings)        8 opt-out op ('add' | 'remove' | '')
--       9 author id           10 history entries (JSON array of strings)
--      11 history max length 12 conversation ttl (s)    13 away_sent_at ms ('' = unchanged)
--      14 stats fields (JSON array)                      15 outbox max length
--      16 message created_at (ms)                     17 LLM deadline (ms) ('' = not pending)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[3])
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[2])
end
for _, payload in ipairs(cjson.decode(ARGV[7])) do
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[15], '*', 'message_id', ARGV[4], 'payload', payload)
end
if ARGV[8] == 'add' then
  redis.call('SADD', KEYS[6], ARGV[9])
elseif ARGV[8] == 'remove' then
  redis.call('SREM', KEYS[6], ARGV[9])
end
for _, entry in ipairs(cjson.decode(ARGV[10])) do
  redis.call('RPUSH', KEYS[7], entry)
end
redis.call('LTRIM', KEYS[7], -tonumber(ARGV[11]), -1)
redis.call('EXPIRE', KEYS[7], ARGV[12])
redis.call('HSETNX', KEYS[8], 'first_seen', ARGV[16])
redis.call('HSET', KEYS[8], 'last_seen', ARGV[16])
if ARGV[13] ~= '' then
  redis.call('HSET', KEYS[8], 'away_sent_at', ARGV[13])
end
redis.call('EXPIRE', KEYS[8], ARGV[12])
for _, field in ipairs(cjson.decode(ARGV[14])) do
  redis.call('HINCRBY', KEYS[9], field, 1)
end
if ARGV[17] ~= '' then
  redis.call('ZADD', KEYS[10], ARGV[17], ARGV[2])
end
return 1
