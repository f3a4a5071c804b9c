-- ARGV[3] worker, ARGV[4] queue, ARGV[5] the gap after which beats count as resumed,
-- ARGV[6] the version of its own entry the worker last saw ('': not said), ARGV[7] its
-- pools (a JSON array), ARGV[8] its task digest ('' for unknown). Records the beat and
-- heals the entry: a worker that beats is not down, and its own expired pause ends even
-- when no beat process runs. A change of pools or tasks (a consumer added at run time)
-- is saved as a 'serve' event; an unchanged beat saves nothing.
local name, queue, seen = ARGV[3], ARGV[4], tonumber(ARGV[6])
note_beat(name, tonumber(ARGV[5]))
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
  set_service(e, ARGV[7], ARGV[8])
  revive(e)
  return reply('ok', save(e, 'register', 'heartbeat'))
end
local served = set_service(e, ARGV[7], ARGV[8])
-- An expired pause or operator's drain ends; a drain still under way stays draining
-- (the worker beats while it finishes its tasks).
if e.state ~= 'up' and effective(e) == 'up' then
  set_state(e, 'up', NULL, NULL)
  return reply('ok', save(e, 'resume', 'expired'))
end
if served then return reply('ok', save(e, 'serve', 'heartbeat')) end
return reply('noop', e)
