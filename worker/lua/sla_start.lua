-- Start SLA timers (worker/sla/tracker.py, SlaTracker.start_many), each at most once however
-- many workers try: a timer is written only if its key does not exist (SET NX), and with it,
-- in the same atomic step, its entries in the due index, the brand's timer index and the
-- conversation's open set, and its `sla.started` event. No decision effect is written here.
--
-- Per timer, 5 KEYS and 9 ARGV (timer i of a call uses KEYS[5*(i-1)+k], ARGV[9*(i-1)+k]):
-- KEYS  1 the timer (string)   2 due index (zset)   3 the brand's timers (zset)
--       4 the conversation's open timers (set)        5 the brand's SLA events (stream)
-- ARGV  1 timer JSON           2 its TTL (s)        3 due member ('brand/message id')
--       4 next step (ms; '' = none)                  5 message id
--       6 started (ms)         7 open ('1' | '')    8 event payload (JSON)
--       9 events stream max length (approximate)
-- Returns, for each timer, 1 started or 0 it had one already.
local NKEYS, NARGS = 5, 9
local n = #KEYS / NKEYS
if n < 1 or n ~= math.floor(n) or #ARGV ~= n * NARGS then
  return redis.error_reply('sla_start: ' .. NKEYS .. ' KEYS and ' .. NARGS .. ' ARGV per timer')
end
local results = {}
for i = 0, n - 1 do
  local k, a = i * NKEYS, i * NARGS
  if redis.call('SET', KEYS[k + 1], ARGV[a + 1], 'NX', 'EX', ARGV[a + 2]) then
    if ARGV[a + 4] ~= '' then
      redis.call('ZADD', KEYS[k + 2], ARGV[a + 4], ARGV[a + 3])
    else
      redis.call('ZREM', KEYS[k + 2], ARGV[a + 3])
    end
    redis.call('ZADD', KEYS[k + 3], ARGV[a + 6], ARGV[a + 5])
    if ARGV[a + 7] == '1' then
      redis.call('SADD', KEYS[k + 4], ARGV[a + 5])
    else
      redis.call('SREM', KEYS[k + 4], ARGV[a + 5])
    end
    redis.call('XADD', KEYS[k + 5], 'MAXLEN', '~', ARGV[a + 9], '*',
      'type', 'sla.started', 'notify', '0', 'payload', ARGV[a + 8])
    results[i + 1] = 1
  else
    results[i + 1] = 0
  end
end
return results
