-- ARGV[3] worker, ARGV[4] queue, ARGV[5] the gap after which beats count as resumed,
-- ARGV[6] the version of its own entry the worker last saw ('': not said), ARGV[7] tasks
-- it finished well and ARGV[8] tasks that failed since its last beat, ARGV[9] failures in
-- a row at the end of those, ARGV[10] the outlier rules as JSON ('': judge nothing; see
-- rfqueue.table.outliers), ARGV[11] its pools (a JSON array), ARGV[12] its task digest
-- ('' for unknown). Records the beat and heals the entry: a worker that beats is not
-- down, and its own expired pause ends even when no beat process runs. A change of pools
-- or tasks (a consumer added at run time) is saved as a 'serve' event; an unchanged beat
-- saves nothing. The outcomes go into the worker's window; when they make it an outlier
-- the reply says for how long to eject it (the worker asks pause.lua, inside the budget).
local name, queue, seen = ARGV[3], ARGV[4], tonumber(ARGV[6])
local successes, failures = tonumber(ARGV[7]) or 0, tonumber(ARGV[8]) or 0
local streak = tonumber(ARGV[9]) or 0
local rules_ok, rules = pcall(cjson.decode, ARGV[10] ~= '' and ARGV[10] or 'null')
if not rules_ok or type(rules) ~= 'table' then rules = nil end
local interval = rules and tonumber(rules.interval) or 10

local function record_outcomes()
  if successes + failures <= 0 then return nil end
  local o = shift_window(load_outcomes(name), interval)
  o.ok, o.fail = o.ok + successes, o.fail + failures
  -- A success in this batch ends the old streak: the batch's own tail counts; else it grows.
  if successes > 0 then o.streak = streak else o.streak = o.streak + failures end
  save_outcomes(name, o)
  return o
end

local DEFAULT_POOL = rules and rules.default or 'celery'

-- The pools a worker serves; an entry from before pools serves the default queue's.
local function pools_served(e)
  if #pools_of(e) > 0 then return pools_of(e) end
  return {DEFAULT_POOL}
end

local function shares_pool(a, b, default)
  for _, p in ipairs(pools_served(a)) do
    if serves_pool(b, p, default) then return true end
  end
  return false
end

-- Its failure rate as judged: 1 after ``consecutive`` failures in a row, else the
-- window's rate once it holds ``min_requests`` tasks; nil while there is too little.
local function own_rate(o)
  local consecutive = tonumber(rules.consecutive) or 0
  if consecutive > 0 and o.streak >= consecutive then return 1, o.streak .. ' failures in a row' end
  local total = o.ok + o.fail + o.prev_ok + o.prev_fail
  if total < (tonumber(rules.min_requests) or 1) then return nil end
  local rate = (o.fail + o.prev_fail) / total
  return rate, string.format('%d of %d tasks failed', o.fail + o.prev_fail, total)
end

-- The pool's other up workers: their failures and tasks in the window; and, per pool it
-- serves, whether one more ejection stays within max_ejection_percent.
local function peers_of(e)
  local default = DEFAULT_POOL
  local failed, total, room = 0, 0, true
  local entries = all_entries()
  for _, other in ipairs(entries) do
    if other.worker ~= name and effective(other) == 'up' and shares_pool(e, other, default) then
      local o = shift_window(load_outcomes(other.worker), interval)
      failed, total = failed + o.fail + o.prev_fail, total + o.ok + o.fail + o.prev_ok + o.prev_fail
    end
  end
  for _, pool in ipairs(pools_served(e)) do
    local members, ejected = 0, 0
    for _, other in ipairs(entries) do
      if serves_pool(other, pool, default) then
        members = members + 1
        if effective(other) == 'paused' and other.reason == 'outlier' then ejected = ejected + 1 end
      end
    end
    local most = math.max(1, math.floor(members * (tonumber(rules.max_percent) or 0) / 100))
    if ejected + 1 > most then room = false end
  end
  return failed, total, room
end

-- How long to eject ``e`` (with why), or nil: only when its pool's others fail far less.
-- A pool that fails alike (its database is down) is the tasks' fault: nobody goes.
local function verdict(e, o)
  if not rules or not o or failures <= 0 or effective(e) ~= 'up' then return nil end
  -- Workers of the same pools found failing alike: not judged again for a while.
  local calm = 'calm:' .. cjson.encode(pools_served(e))
  if (tonumber(redis.call('HGET', OUTCOMES, calm)) or 0) > NOW then return nil end
  local rate, why = own_rate(o)
  if not rate then return nil end
  local failed, total, room = peers_of(e)
  if total < (tonumber(rules.min_requests) or 1) then return nil end
  if not room or rate - failed / total < (tonumber(rules.gap) or 1) then
    -- The pool fails alike, or has its share ejected. Until that changes, every beat of
    -- every worker of it would read the whole fleet (29 ms of Redis time for 1,000
    -- workers): they are judged again in a quarter of the window, once for all of them.
    redis.call('HSET', OUTCOMES, calm, NOW + interval / 4)
    return nil
  end
  local base = tonumber(rules.base) or 30
  -- Ejections in a row: forgotten once it has done well for ten base ejection times.
  local before = o.ejections
  if NOW - o.ejected_until > 10 * base then before = 0 end
  local seconds = math.min(base * (before + 1), tonumber(rules.max_pause) or base)
  local note = string.format('%s; its pool\'s others %d of %d', why, failed, total)
  return {seconds = seconds, note = note}
end

note_beat(name, tonumber(ARGV[5]))
local outcomes = record_outcomes()
local e = load(name)
if e and e.state == 'down' and seen and seen < e.version then
  -- Sent before the worker could know it was marked down (a beat held up in the network
  -- lands late): old news, no sign of life now. The reply tells the worker; its next
  -- beat, sent after it knew, revives it, if it is still there.
  return reply('noop', e)
end
if not e or e.state == 'down' then
  e = e or {worker = name}
  e.queue = queue
  set_service(e, ARGV[11], ARGV[12])
  revive(e)
  return reply('ok', save(e, 'register', 'heartbeat'))
end
local served = set_service(e, ARGV[11], ARGV[12])
-- An expired pause or operator's drain ends; a drain still under way stays draining
-- (the worker beats while it finishes its tasks).
if e.state ~= 'up' and effective(e) == 'up' then
  set_state(e, 'up', NULL, NULL)
  return reply('ok', save(e, 'resume', 'expired'), verdict(e, outcomes))
end
if served then return reply('ok', save(e, 'serve', 'heartbeat'), verdict(e, outcomes)) end
return reply('noop', e, verdict(e, outcomes))
