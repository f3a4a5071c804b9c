-- ARGV[4] worker, ARGV[5] queue, ARGV[6] the gap after which beats count as resumed,
-- ARGV[7] its pools (a JSON array), ARGV[8] its task digest ('' for unknown).
-- A worker (re)starts: up, unless an unexpired pause survives.
local name, queue = ARGV[4], ARGV[5]
note_beat(name, tonumber(ARGV[6]))
local e = load(name)
if e and e.state == 'paused' and pause_left(e) and e.queue == queue then
  -- Still paused; a restart may have brought other pools or tasks.
  if set_service(e, ARGV[7], ARGV[8]) then return reply('ok', save(e, 'serve', 'start')) end
  return reply('noop', e)
end
e = e or {worker = name}
e.queue = queue
set_service(e, ARGV[7], ARGV[8])
revive(e)
return reply('ok', save(e, 'register', 'start'))
