-- ARGV[3] worker, ARGV[4] seconds, ARGV[5] reason, ARGV[6] note ('' for none),
-- (reason 'outlier': an ejection, counted in the worker's outcomes, which start afresh)
-- ARGV[7] budget: '' for none, else max paused as 'count:N' or 'fraction:F',
-- ARGV[8] min up, ARGV[9] max pause (seconds). A budgeted pause checks the blast radius
-- in this same atomic step; every pause ends by the server's clock, within max pause.
-- ARGV[11] the silence after which a down worker has departed ('': never): departed
-- workers count nowhere in the budget.
local name, seconds, reason, note = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
local budget, min_up, max_pause = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
if note == '' then note = NULL end
local e = load(name)
if not e then return reply('unknown') end
-- A draining worker stays draining: a pause would end, and route tasks to a leaving worker.
if effective(e) == 'draining' then return reply('state', e) end
if not (seconds and seconds > 0 and seconds <= max_pause) then return reply('duration', e) end
local pause_until = NOW + seconds
if budget ~= '' then
  if effective(e) ~= 'up' then return reply('state', e) end
  local entries = present_entries(tonumber(ARGV[11] or ''))
  local total, not_up = 0, 0
  for _, other in ipairs(entries) do
    total = total + 1
    if effective(other) ~= 'up' then not_up = not_up + 1 end
  end
  local kind, value = string.match(budget, '^(%a+):(.+)$')
  local max_paused = tonumber(value)
  if kind == 'fraction' then max_paused = math.floor(max_paused * total) end
  if not_up + 1 > max_paused or (total - not_up - 1) < min_up then
    return reply('budget', e)
  end
  -- ARGV[10] the budget inside each pool (see pool_budget_allows), checked in this same step.
  if not pool_budget_allows(e, entries, ARGV[10], budget, min_up) then
    return reply('budget', e)
  end
end
if reason == 'outlier' then note_ejection(name, pause_until) end
if e.state == 'down' then
  -- Not running: it owes the pause once it starts again.
  e['until'], e.pause_reason = pause_until, reason
  return reply('ok', save(e, 'pause', reason, note))
end
set_state(e, 'paused', reason, pause_until, note)
return reply('ok', save(e, 'pause', reason, note))
