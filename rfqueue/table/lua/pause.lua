-- ARGV[4] worker, ARGV[5] until, ARGV[6] reason, ARGV[7] note ('' for none),
-- ARGV[8] budget: '' for none, else max paused as 'count:N' or 'fraction:F',
-- ARGV[9] min up. A budgeted pause checks the blast radius in this same atomic step.
local name, pause_until, reason, note = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local budget, min_up = ARGV[8], tonumber(ARGV[9])
if note == '' then note = NULL end
local e = load(name)
if not e then return reply('unknown') end
if budget ~= '' then
  if effective(e) ~= 'up' then return reply('state', e) end
  local total, not_up = 0, 0
  for _, other in ipairs(all_entries()) do
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
  if not pool_budget_allows(e, all_entries(), ARGV[10], budget, min_up) then
    return reply('budget', e)
  end
end
if e.state == 'down' then
  -- Not running: it owes the pause once it starts again.
  e['until'], e.pause_reason = pause_until, reason
  return reply('ok', save(e, 'pause', reason, note))
end
set_state(e, 'paused', reason, pause_until, note)
return reply('ok', save(e, 'pause', reason, note))
