-- ARGV[3] worker, ARGV[4] reason. Ends a pause; a down worker keeps its state but
-- loses the pause it would have resumed into.
local name, reason = ARGV[3], ARGV[4]
local e = load(name)
if not e then return reply('unknown') end
if e.state == 'paused' then
  set_state(e, 'up', NULL, NULL)
  return reply('ok', save(e, 'resume', reason))
end
if e.state == 'down' and pause_left(e) then
  e['until'], e.pause_reason = NULL, nil
  return reply('ok', save(e, 'resume', reason))
end
return reply('noop', e)
