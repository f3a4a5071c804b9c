-- ARGV[3] worker, ARGV[4] reason. Ends a pause or an operator's drain; a down worker
-- keeps its state but loses the pause it would have resumed into. A worker draining
-- because it is shutting down is on its way out: status 'state', nothing changes.
local name, reason = ARGV[3], ARGV[4]
local e = load(name)
if not e then return reply('unknown') end
if e.state == 'draining' and e.reason == 'shutdown' then return reply('state', e) end
if e.state == 'paused' or e.state == 'draining' then
  set_state(e, 'up', NULL, NULL)
  return reply('ok', save(e, 'resume', reason))
end
if e.state == 'down' and pause_left(e) then
  e['until'], e.pause_reason = NULL, nil
  return reply('ok', save(e, 'resume', reason))
end
return reply('noop', e)
