-- Shared by every table script. KEYS: workers, heartbeats, version, events, liveness,
-- reap lease, outcomes.
-- ARGV[1] channel, ARGV[2] events cap; the rest is the script's.
local WORKERS, HEARTBEATS, VERSION, EVENTS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local LIVENESS, REAP_LEASE, OUTCOMES = KEYS[5], KEYS[6], KEYS[7]
local CHANNEL, EVENTS_MAX = ARGV[1], tonumber(ARGV[2])
-- One clock for the whole fleet: every time stamped or compared here is the Redis
-- server's, never a caller's (hosts' clocks drift; a worker 7 s behind would look dead).
local function server_time()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local NOW = server_time()
local NULL = cjson.null
-- Set by note_beat: this script records the worker's own beat, and says so when it
-- announces a change (readers take nothing else, a resume's `since` say, as a sign of life).
local BEAT = nil

local STATES = {up = true, paused = true, down = true, draining = true}
local REASONS = {
  [''] = true, chaos = true, manual = true, heartbeat = true, shutdown = true,
  expired = true, start = true, outlier = true,
}

local function is_number(v)
  return type(v) == 'number' and v == v and v ~= math.huge and v ~= -math.huge
end

-- Pools and task sets (what a worker serves) ------------------------------------------
-- e.pools: array of queue names the worker consumes besides its own and the control
-- queue (absent: unknown, the default queue); e.tasks: digest of its task names.

local function valid_service(e)
  local pools, tasks = e.pools, e.tasks
  if tasks ~= nil and tasks ~= NULL and (type(tasks) ~= 'string' or tasks == '') then
    return false
  end
  if pools == nil or pools == NULL then return true end
  if type(pools) ~= 'table' then return false end
  for k, p in pairs(pools) do
    if type(k) ~= 'number' or type(p) ~= 'string' or p == '' then return false end
  end
  return true
end

-- A JSON array of pool names from a script argument; anything else reads as none.
local function parse_pools(raw)
  local ok, pools = pcall(cjson.decode, raw or '[]')
  local out = {}
  if not ok or type(pools) ~= 'table' then return out end
  for _, p in ipairs(pools) do
    if type(p) == 'string' and p ~= '' then out[#out + 1] = p end
  end
  return out
end

local function pools_of(e)
  if type(e.pools) ~= 'table' then return {} end
  return e.pools
end

local function same_pools(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i] ~= b[i] then return false end
  end
  return true
end

-- Record what the worker serves (sorted pools as JSON, task digest or ''); true when it
-- changed. Without the arguments (nil) the entry keeps what it had.
local function set_service(e, pools_json, digest)
  if pools_json == nil or digest == nil then return false end
  local pools = parse_pools(pools_json)
  if digest == '' then digest = nil end
  local old_digest = e.tasks
  if old_digest == NULL then old_digest = nil end
  local changed = old_digest ~= digest or not same_pools(pools_of(e), pools)
  if #pools > 0 then e.pools = pools else e.pools = nil end
  e.tasks = digest
  return changed
end

-- The entry stored under ``name``, if it is one every reader (rfqueue.entry too) accepts.
-- Anything else counts as absent: never counted, never changed, replaced on the next beat.
local function decode(raw, name)
  local ok, e = pcall(cjson.decode, raw)
  if not ok or type(e) ~= 'table' then return nil end
  if type(e.worker) ~= 'string' or e.worker ~= name or e.worker == '' then return nil end
  if type(e.queue) ~= 'string' or e.queue == '' or not STATES[e.state] then return nil end
  if not is_number(e.since) or not is_number(e.version) then return nil end
  local u, r, pr = e['until'], e.reason, e.pause_reason
  if u ~= nil and u ~= NULL and not is_number(u) then return nil end
  if r ~= nil and r ~= NULL and not REASONS[r] then return nil end
  if pr ~= nil and pr ~= NULL and not REASONS[pr] then return nil end
  if not valid_service(e) then return nil end
  return e
end

local function load(name)
  local raw = redis.call('HGET', WORKERS, name)
  if not raw then return nil end
  return decode(raw, name)
end

local function all_entries()
  local flat = redis.call('HGETALL', WORKERS)
  local out = {}
  for i = 1, #flat, 2 do
    local e = decode(flat[i + 1], flat[i])
    if e then out[#out + 1] = e end
  end
  return out
end

local function pause_left(e)
  local u = e['until']
  return u ~= nil and u ~= NULL and tonumber(u) > NOW
end

-- An operator's drain that reached its ``until``; a drain without one (the worker's own
-- shutdown) lasts until the worker stops.
local function drain_over(e)
  local u = e['until']
  return e.state == 'draining' and u ~= nil and u ~= NULL and not pause_left(e)
end

-- The state every reader sees: an expired pause or drain counts as up.
local function effective(e)
  if e.state == 'paused' and not pause_left(e) then return 'up' end
  if drain_over(e) then return 'up' end
  return e.state
end

local function save(e, action, reason, note)
  e.version = redis.call('INCR', VERSION)
  local body = cjson.encode(e)
  redis.call('HSET', WORKERS, e.worker, body)
  redis.call('LPUSH', EVENTS, cjson.encode({
    time = NOW, worker = e.worker, action = action, reason = reason,
    state = e.state, ['until'] = e['until'], note = note or NULL, version = e.version,
  }))
  redis.call('LTRIM', EVENTS, 0, EVENTS_MAX - 1)
  if BEAT then  -- announced only: the stored entry holds no heartbeat
    e.beat = BEAT
    body = cjson.encode(e)
    e.beat = nil
  end
  redis.call('PUBLISH', CHANNEL, body)
  return e
end

local function set_state(e, state, reason, pause_until, note)
  e.state, e.reason, e.since, e['until'], e.note = state, reason, NOW, pause_until, note or NULL
end

-- Down, keeping an unexpired pause (and why it was paused) for when the worker returns.
-- A drain ends with the worker: its ``until`` is no pause to keep.
local function take_down(e, reason)
  if e.state == 'draining' then e['until'] = NULL end
  if pause_left(e) then
    if e.state == 'paused' then e.pause_reason = e.reason end
    e.state, e.reason, e.since = 'down', reason, NOW
  else
    set_state(e, 'down', reason, NULL, e.note)
  end
end

-- Back from down: into the pause it still owes, or up. A new life ends a drain.
local function revive(e)
  if e.state == 'draining' then e['until'] = NULL end
  if pause_left(e) then
    e.state, e.reason, e.since = 'paused', e.pause_reason or 'manual', NOW
  else
    set_state(e, 'up', NULL, NULL)
  end
  e.pause_reason = nil
end

-- The budget inside each pool (issue 12) ----------------------------------------------

-- A limit as 'count:N' or 'fraction:F' (of ``total``), as a number of workers.
local function parse_limit(text, total)
  local kind, value = string.match(text, '^(%a+):(.+)$')
  local limit = tonumber(value) or 0
  if kind == 'fraction' then limit = math.floor(limit * total) end
  return limit
end

local function serves_pool(e, pool, default)
  local pools = pools_of(e)
  if #pools == 0 then return pool == default end
  for _, p in ipairs(pools) do
    if p == pool then return true end
  end
  return false
end

-- Whether pausing ``e`` keeps every pool it serves within its budget: one more worker
-- out must fit the pool's max paused (of the pool's registered workers) and leave its
-- min up. ``spec`` (JSON): {default = pool of entries without pools, max = {pool =
-- 'count:N'}, min = {pool = N}}; pools not named use ``max_arg`` and ``min_up``.
local function pool_budget_allows(e, entries, spec_json, max_arg, min_up)
  if spec_json == nil or spec_json == '' then return true end
  local ok, spec = pcall(cjson.decode, spec_json)
  if not ok or type(spec) ~= 'table' then return false end
  local default = spec.default or 'celery'
  local pools = pools_of(e)
  if #pools == 0 then pools = {default} end
  for _, pool in ipairs(pools) do
    local total, not_up = 0, 0
    for _, other in ipairs(entries) do
      if serves_pool(other, pool, default) then
        total = total + 1
        if effective(other) ~= 'up' then not_up = not_up + 1 end
      end
    end
    local limit = parse_limit((spec.max or {})[pool] or max_arg, total)
    local floor = tonumber((spec.min or {})[pool] or min_up) or 0
    if not_up + 1 > limit or total - not_up - 1 < floor then return false end
  end
  return true
end

-- Every reply carries the server's time, so callers can judge entries by the same clock.
local function reply(status, e, eject)
  return cjson.encode({status = status, entry = e or NULL, now = NOW, eject = eject or NULL})
end

local function reply_entries(changed)
  return cjson.encode({entries = changed, now = NOW})
end

-- Record a beat. After a gap longer than ``gap`` in which nobody beat (Redis was down or
-- unreachable for everyone), ``since`` moves to now: silence is counted from then on, so
-- an outage never makes the whole fleet look dead the moment Redis returns.
local function note_beat(name, gap)
  BEAT = NOW
  -- The server's clock can step back (NTP): a worker's last beat never moves back.
  local prev = tonumber(redis.call('HGET', HEARTBEATS, name)) or 0
  if NOW > prev then redis.call('HSET', HEARTBEATS, name, NOW) end
  local last = tonumber(redis.call('HGET', LIVENESS, 'last')) or 0
  if NOW - last > gap then redis.call('HSET', LIVENESS, 'since', NOW) end
  if NOW > last then redis.call('HSET', LIVENESS, 'last', NOW) end
end

-- A worker's last beat as silence is judged: never before heartbeats resumed.
local function last_beat(name)
  local beat = tonumber(redis.call('HGET', HEARTBEATS, name)) or 0
  local since = tonumber(redis.call('HGET', LIVENESS, 'since')) or 0
  return math.max(beat, since)
end

-- Down and silent for longer than ``after`` (seconds; nil: never): it has left the fleet.
local function departed(e, after)
  return after ~= nil and e.state == 'down' and NOW - last_beat(e.worker) > after
end

-- Every entry but the departed: those the budget counts.
local function present_entries(after)
  local out = {}
  for _, e in ipairs(all_entries()) do
    if not departed(e, after) then out[#out + 1] = e end
  end
  return out
end

-- Task outcomes (outlier ejection) ------------------------------------------------------
-- One JSON record per worker in OUTCOMES: ok and fail since ``start``, prev_ok and
-- prev_fail of the interval before, the streak of failures, ejections in a row and when
-- the last ended. Only the worker's beats add to it; an ejection starts it afresh.

local function load_outcomes(name)
  local raw = redis.call('HGET', OUTCOMES, name)
  local ok, o = pcall(cjson.decode, raw or '{}')
  if not ok or type(o) ~= 'table' then o = {} end
  for _, k in ipairs({'start', 'ok', 'fail', 'prev_ok', 'prev_fail', 'streak', 'ejections'}) do
    o[k] = tonumber(o[k]) or 0
  end
  o.ejected_until = tonumber(o.ejected_until) or 0
  return o
end

-- The window as of now: a finished interval becomes the previous one, two drop it all.
local function shift_window(o, interval)
  local age = NOW - o.start
  if age >= 2 * interval then
    o.prev_ok, o.prev_fail, o.ok, o.fail, o.start = 0, 0, 0, 0, NOW
  elseif age >= interval then
    o.prev_ok, o.prev_fail, o.ok, o.fail, o.start = o.ok, o.fail, 0, 0, NOW
  end
  return o
end

local function save_outcomes(name, o)
  redis.call('HSET', OUTCOMES, name, cjson.encode(o))
end

-- An ejection: one more in a row, ending at ``ends``; the worker comes back with a clean slate.
local function note_ejection(name, ends)
  local o = load_outcomes(name)
  o.ejections, o.ejected_until = o.ejections + 1, ends
  o.ok, o.fail, o.prev_ok, o.prev_fail, o.streak, o.start = 0, 0, 0, 0, 0, NOW
  save_outcomes(name, o)
end
