-- ARGV[4] worker, ARGV[5] queue. Records the beat and heals the entry: a worker that
-- beats is not down, and its own expired pause ends even when no beat process runs.
local name, queue = ARGV[4], ARGV[5]
redis.call('HSET', HEARTBEATS, name, NOW)
local e = load(name)
if not e or e.state == 'down' then
  e = e or {worker = name}
  e.queue = queue
  revive(e)
  return reply('ok', save(e, 'register', 'heartbeat'))
end
if e.state == 'paused' and not pause_left(e) then
  set_state(e, 'up', NULL, NULL)
  return reply('ok', save(e, 'resume', 'expired'))
end
return reply('noop', e)
