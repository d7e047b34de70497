-- Claim one outbound action for sending, atomically (the idempotency check).
--
-- KEYS  1 the action's delivery record (hash: state, owner, since, attempts, …)
-- ARGV  1 this deliverer's consumer name   2 now (ms)   3 record TTL (s)
--       4 '1' = take over a 'sending' record (only for receivers that drop repeats)
--
-- Returns {'done', state}     the action already ended (sent, failed, skipped, dry_run, unknown): do nothing
--         {'in_doubt', owner} it is 'sending' but nobody is sending it: a deliverer marked it and
--                             never recorded an answer (it died between sending and recording,
--                             or Redis failed): the platform may have it
--         {'go', attempts}    it is now 'sending', owned by ARGV[1]; attempts counts this one
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'sent' or state == 'failed' or state == 'skipped' or state == 'dry_run' or state == 'unknown' then
  return {'done', state}
end
if state == 'sending' and ARGV[4] ~= '1' then
  return {'in_doubt', redis.call('HGET', KEYS[1], 'owner') or ''}
end
redis.call('HSET', KEYS[1], 'state', 'sending', 'owner', ARGV[1], 'since', ARGV[2])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {'go', tostring(attempts)}
