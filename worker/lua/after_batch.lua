-- What the sweeps after a batch need, read in one call (worker/jobs.py, after_batch): the LLM tasks
-- past their deadline (finish_overdue), the SLA steps due now (SlaTracker.fire_due), the earliest
-- pending step and whether the sweep job of its second is scheduled already (reschedule_next).
-- Three round trips a batch before (two when nothing was due, one more for the LLM index). Read only.
--
-- KEYS  1 LLM-pending index (zset)   2 SLA due index (zset)
--       3 the scheduled registry of the queue the sweep jobs go to ('' = no queue: not checked)
-- ARGV  1 now (ms)   2 how many overdue LLM tasks at most   3 how many due steps at most
--       4 the key prefix (the sweep job of second s is 'rg-sla-' .. sha1('<prefix>:<s * 1000>'), its
--         first 20 hex digits, as SlaTracker._sweep_job)   5 RQ's job key prefix ('rq:job:')
-- Returns {overdue members, due members, earliest {member, score} or {}, second, scheduled}:
-- second is the whole second (rounded up) of max(earliest, now) whose job was checked, '' when
-- nothing is pending or there is no queue; scheduled 1 when that job's hash exists and the registry
-- holds it at that second, else 0.
local now = tonumber(ARGV[1])
if not now or not tonumber(ARGV[2]) or not tonumber(ARGV[3]) then
  return redis.error_reply('after_batch: ARGV 1-3 must be now (ms) and two limits')
end
local overdue = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local earliest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local second, scheduled = '', 0
if earliest[1] and KEYS[3] ~= '' then
  local at = math.max(tonumber(earliest[2]), now)
  local s = math.ceil(at / 1000)
  second = string.format('%d', s)
  local job = 'rg-sla-' .. string.sub(redis.sha1hex(ARGV[4] .. ':' .. second .. '000'), 1, 20)
  if redis.call('EXISTS', ARGV[5] .. job) == 1 then
    local score = redis.call('ZSCORE', KEYS[3], job)
    if score and tonumber(score) == s then
      scheduled = 1
    end
  end
end
return {overdue, due, earliest, second, scheduled}
