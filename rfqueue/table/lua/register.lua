-- ARGV[3] worker, ARGV[4] queue, ARGV[5] the gap after which beats count as resumed,
-- ARGV[6] its pools (a JSON array), ARGV[7] its task digest ('' for unknown).
-- A worker (re)starts: up, unless an unexpired pause survives.
local name, queue = ARGV[3], ARGV[4]
note_beat(name, tonumber(ARGV[5]))
local e = load(name)
if e and e.state == 'paused' and pause_left(e) and e.queue == queue then
  -- Still paused; a restart may have brought other pools or tasks.
  if set_service(e, ARGV[6], ARGV[7]) then return reply('ok', save(e, 'serve', 'start')) end
  return reply('noop', e)
end
e = e or {worker = name}
e.queue = queue
set_service(e, ARGV[6], ARGV[7])
revive(e)
return reply('ok', save(e, 'register', 'start'))
