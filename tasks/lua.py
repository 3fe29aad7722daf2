"""The broker's Redis scripts. Each runs atomically, so no two workers ever see a half-made
change. Every key starts with the prefix passed as ARGV[1] (a single Redis, not a cluster).

Keys (P = prefix):
- `P j:<job>`        hash: msg, agent, tenant, score, dedup, attempts, deliveries, state
                     (ready | delayed | running), worker, enqueued (ms);
- `P r:<agent>`      sorted set: the agent's ready jobs, score = priority * 2^40 + sequence,
                     so the smallest score is the most urgent and, within a priority, the
                     oldest (FIFO). The sequence is a clock: milliseconds since 2025-01-01
                     (`P seq` holds the last one given; one past it when that is ahead, so
                     it always rises, and is under 2^40 until 2059). A job enqueued late
                     (its enqueue was refused during an outage, or Redis lost it) is given
                     its activity's creation as its place instead, so it goes ahead of the
                     jobs enqueued since, not behind them;
- `P eligible`       sorted set: agents that may start a job now (configured, not paused,
                     under their cap, with a ready job), score = their best ready job's score;
                     its first member holds the most urgent job that may run;
- `P a:<agent>`      hash: cap, paused (0 runs, 1 paused, 2 terminated: held for good),
                     tenant; `P unconfigured`: agents whose config a worker must still load
                     from the database;
- `P run:<agent>`    set: the agent's running jobs (its size is checked against the cap);
- `P jobs:<agent>`   set: all of the agent's jobs (for cancelling);
- `P leases`         sorted set: running job -> lease deadline (ms);
- `P delayed`        sorted set: job waiting for a retry -> due time (ms);
- `P k:<dedup key>`  string: the waiting job holding a deduplication key;
- `P dropped`        set: activities whose job was dropped as a duplicate (the worker
                     cancels them, so the reconciler never brings them back);
- `P wake`           list: tokens idle workers block on (BLPOP), pushed when a job may start;
- `P seq`            string: the last sequence given (above);
- `P dead_letters`, `P dead`: a counter, and the last 1,000 dead letters.
"""

from __future__ import annotations

# Shared helpers, prepended to every script.
COMMON = r"""
local P = ARGV[1]
local TWO40 = 1099511627776
local EPOCH_MS = 1735689600000  -- 2025-01-01T00:00:00Z: sequences count from here

local function refresh(agent)
  local cfg = redis.call('HMGET', P .. 'a:' .. agent, 'cap', 'paused')
  if not cfg[1] then
    redis.call('ZREM', P .. 'eligible', agent)
    return 0
  end
  local best = redis.call('ZRANGE', P .. 'r:' .. agent, 0, 0, 'WITHSCORES')
  if #best == 0 or cfg[2] ~= '0'
      or redis.call('SCARD', P .. 'run:' .. agent) >= tonumber(cfg[1]) then
    redis.call('ZREM', P .. 'eligible', agent)
    return 0
  end
  redis.call('ZADD', P .. 'eligible', best[2], agent)
  return 1
end

local function wake(n)
  for _ = 1, n do
    redis.call('LPUSH', P .. 'wake', '1')
  end
  redis.call('LTRIM', P .. 'wake', 0, 63)
end

-- After a change to the agent's jobs or slots: one idle worker wakes if it may start one.
local function refresh_and_wake(agent)
  if refresh(agent) == 1 then
    wake(1)
  end
end

local function make_ready(job, agent, score)
  redis.call('HSET', P .. 'j:' .. job, 'state', 'ready', 'worker', '')
  redis.call('ZADD', P .. 'r:' .. agent, score, job)
end

local function remove_job(job, agent)
  local dedup = redis.call('HGET', P .. 'j:' .. job, 'dedup')
  if dedup and dedup ~= '' and redis.call('GET', P .. 'k:' .. dedup) == job then
    redis.call('DEL', P .. 'k:' .. dedup)
  end
  redis.call('DEL', P .. 'j:' .. job)
  redis.call('ZREM', P .. 'r:' .. agent, job)
  redis.call('ZREM', P .. 'delayed', job)
  redis.call('ZREM', P .. 'leases', job)
  redis.call('SREM', P .. 'run:' .. agent, job)
  redis.call('SREM', P .. 'jobs:' .. agent, job)
end

-- The job is running under this delivery: the fence that stops a worker whose lease ran
-- out from acknowledging (or retrying) a delivery that is no longer its own.
local function holds(job, delivery)
  local j = redis.call('HMGET', P .. 'j:' .. job, 'agent', 'deliveries', 'state')
  if not j[1] or j[2] ~= delivery or j[3] ~= 'running' then
    return nil
  end
  return j[1]
end
"""

# ARGV: P, job, agent, tenant, priority, msg, dedup ('' for none), now_ms,
#       place_ms ('' for none: now; else when the job should have been enqueued)
# Returns 1 (enqueued), 0 (the job exists already), -1 (dropped: duplicate key waiting).
ENQUEUE = r"""
local job, agent, tenant = ARGV[2], ARGV[3], ARGV[4]
local priority, msg, dedup, now = tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8])
local place = ARGV[9] or ''
if redis.call('EXISTS', P .. 'j:' .. job) == 1 then
  return 0
end
if dedup ~= '' then
  local holder = redis.call('GET', P .. 'k:' .. dedup)
  if holder then
    local state = redis.call('HGET', P .. 'j:' .. holder, 'state')
    if state == 'ready' or state == 'delayed' then
      redis.call('SADD', P .. 'dropped', job)
      return -1
    end
  end
  redis.call('SET', P .. 'k:' .. dedup, job)
end
local last = tonumber(redis.call('GET', P .. 'seq') or '0')
local seq
if place == '' then
  seq = math.max(last + 1, now - EPOCH_MS)
  redis.call('SET', P .. 'seq', string.format('%.0f', seq))
else
  -- Never past the clock: jobs enqueued from now on still come after it.
  seq = math.min(math.max(tonumber(place) - EPOCH_MS, 0), last + 1)
  if seq > last then
    redis.call('SET', P .. 'seq', string.format('%.0f', seq))
  end
end
local score = string.format('%.0f', priority * TWO40 + seq)
redis.call('HSET', P .. 'j:' .. job, 'msg', msg, 'agent', agent, 'tenant', tenant,
  'score', score, 'dedup', dedup, 'attempts', 0, 'deliveries', 0, 'state', 'ready',
  'worker', '', 'enqueued', now)
redis.call('ZADD', P .. 'r:' .. agent, score, job)
redis.call('SADD', P .. 'jobs:' .. agent, job)
if redis.call('EXISTS', P .. 'a:' .. agent) == 0 then
  redis.call('SADD', P .. 'unconfigured', agent)
  wake(1)
else
  refresh_and_wake(agent)
end
return 1
"""

# ARGV: P, now_ms, worker, lease_ms, n_tenants, tenant...
# Returns {'job', job, msg, delivery, attempts, agent, tenant, enqueued_ms}
#      or {'configure', agent...}: agents to configure from the database first
#      or {'empty', next_delayed_ms or '', next_lease_ms or ''}.
CLAIM = r"""
local now, worker, lease = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local n_tenants = tonumber(ARGV[5])

-- Retries whose backoff is over become ready again.
for _, job in ipairs(redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', P .. 'delayed', job)
  local j = redis.call('HMGET', P .. 'j:' .. job, 'agent', 'score')
  if j[1] then
    make_ready(job, j[1], j[2])
    refresh(j[1])
  end
end
-- Jobs whose worker stopped renewing their lease (it died) are delivered again, in their
-- original place in the queue.
for _, job in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', P .. 'leases', job)
  local j = redis.call('HMGET', P .. 'j:' .. job, 'agent', 'score')
  if j[1] then
    redis.call('SREM', P .. 'run:' .. j[1], job)
    make_ready(job, j[1], j[2])
    refresh(j[1])
  end
end

local unconfigured = redis.call('SRANDMEMBER', P .. 'unconfigured', 50)
if #unconfigured > 0 then
  table.insert(unconfigured, 1, 'configure')
  return unconfigured
end

local agent = nil
if n_tenants == 0 then
  agent = redis.call('ZRANGE', P .. 'eligible', 0, 0)[1]
else
  local allowed = {}
  for i = 1, n_tenants do
    allowed[ARGV[5 + i]] = true
  end
  local start = 0
  while not agent do
    local batch = redis.call('ZRANGE', P .. 'eligible', start, start + 99)
    if #batch == 0 then
      break
    end
    for _, candidate in ipairs(batch) do
      if allowed[redis.call('HGET', P .. 'a:' .. candidate, 'tenant')] then
        agent = candidate
        break
      end
    end
    start = start + 100
  end
end

if not agent then
  local d = redis.call('ZRANGE', P .. 'delayed', 0, 0, 'WITHSCORES')
  local l = redis.call('ZRANGE', P .. 'leases', 0, 0, 'WITHSCORES')
  return {'empty', d[2] or '', l[2] or ''}
end

local job = redis.call('ZPOPMIN', P .. 'r:' .. agent)[1]
local key = P .. 'j:' .. job
local delivery = redis.call('HINCRBY', key, 'deliveries', 1)
redis.call('HSET', key, 'state', 'running', 'worker', worker)
redis.call('SADD', P .. 'run:' .. agent, job)
redis.call('ZADD', P .. 'leases', now + lease, job)
local dedup = redis.call('HGET', key, 'dedup')
if dedup ~= '' and redis.call('GET', P .. 'k:' .. dedup) == job then
  redis.call('DEL', P .. 'k:' .. dedup)
end
refresh(agent)
local j = redis.call('HMGET', key, 'msg', 'attempts', 'tenant', 'enqueued')
return {'job', job, j[1], tostring(delivery), j[2], agent, j[3], j[4]}
"""

# ARGV: P, job, delivery. Finished (or dead-lettered): the job goes; its slot frees.
ACK = r"""
local job = ARGV[2]
local agent = holds(job, ARGV[3])
if not agent then
  return 0
end
remove_job(job, agent)
refresh_and_wake(agent)
return 1
"""

# ARGV: P, job, delivery, due_ms. A failed attempt waits in the delayed set.
RETRY = r"""
local job, due = ARGV[2], ARGV[4]
local agent = holds(job, ARGV[3])
if not agent then
  return -1
end
local attempts = redis.call('HINCRBY', P .. 'j:' .. job, 'attempts', 1)
redis.call('HSET', P .. 'j:' .. job, 'state', 'delayed', 'worker', '')
redis.call('SREM', P .. 'run:' .. agent, job)
redis.call('ZREM', P .. 'leases', job)
redis.call('ZADD', P .. 'delayed', due, job)
refresh_and_wake(agent)
return attempts
"""

# ARGV: P, job, delivery, record. The last retry failed: count it, keep a record, remove.
DEAD = r"""
local job = ARGV[2]
local agent = holds(job, ARGV[3])
if not agent then
  return 0
end
remove_job(job, agent)
redis.call('INCR', P .. 'dead_letters')
redis.call('LPUSH', P .. 'dead', ARGV[4])
redis.call('LTRIM', P .. 'dead', 0, 999)
refresh_and_wake(agent)
return 1
"""

# ARGV: P, job, delivery. A stopping worker hands a job back, in its place, no attempt used.
RELEASE = r"""
local job = ARGV[2]
local agent = holds(job, ARGV[3])
if not agent then
  return 0
end
redis.call('SREM', P .. 'run:' .. agent, job)
redis.call('ZREM', P .. 'leases', job)
make_ready(job, agent, redis.call('HGET', P .. 'j:' .. job, 'score'))
refresh_and_wake(agent)
return 1
"""

# ARGV: P, deadline_ms, job1, delivery1, job2, delivery2, ...
# Extends the leases this worker still holds; returns the jobs it lost.
HEARTBEAT = r"""
local deadline = ARGV[2]
local lost = {}
for i = 3, #ARGV, 2 do
  local job = ARGV[i]
  if holds(job, ARGV[i + 1]) and redis.call('ZSCORE', P .. 'leases', job) then
    redis.call('ZADD', P .. 'leases', deadline, job)
  else
    table.insert(lost, job)
  end
end
return lost
"""

# ARGV: P, agent, tenant, cap, paused (0 runs, 1 paused, 2 terminated). Caps and PAUSED
# live here, read by CLAIM. TERMINATED is final, so it stays: a re-sync that read the agent's
# status before it was terminated cannot release its jobs.
CONFIGURE = r"""
local agent = ARGV[2]
local paused = ARGV[5]
if redis.call('HGET', P .. 'a:' .. agent, 'paused') == '2' then
  paused = '2'
end
redis.call('HSET', P .. 'a:' .. agent, 'tenant', ARGV[3], 'cap', ARGV[4], 'paused', paused)
redis.call('SREM', P .. 'unconfigured', agent)
if refresh(agent) == 1 then
  local ready = redis.call('ZCARD', P .. 'r:' .. agent)
  wake(math.min(ready, tonumber(ARGV[4])))
end
return 1
"""

# ARGV: P, agent. Removes the agent's waiting (ready or delayed) jobs; returns them.
CANCEL_AGENT = r"""
local agent = ARGV[2]
local cancelled = {}
for _, job in ipairs(redis.call('SMEMBERS', P .. 'jobs:' .. agent)) do
  local state = redis.call('HGET', P .. 'j:' .. job, 'state')
  if state ~= 'running' then
    remove_job(job, agent)
    table.insert(cancelled, job)
  end
end
refresh(agent)
return cancelled
"""
