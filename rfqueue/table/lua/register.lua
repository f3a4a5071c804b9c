-- ARGV[3] worker, ARGV[4] queue, ARGV[5] the gap after which beats count as resumed.
-- A worker (re)starts: up, unless an unexpired pause survives.
local name, queue = ARGV[3], ARGV[4]
note_beat(name, tonumber(ARGV[5]))
local e = load(name)
if e and e.state == 'paused' and pause_left(e) and e.queue == queue then
  return reply('noop', e)
end
e = e or {worker = name}
e.queue = queue
revive(e)
return reply('ok', save(e, 'register', 'start'))
