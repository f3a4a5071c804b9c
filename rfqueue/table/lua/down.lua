-- ARGV[3] worker, ARGV[4] reason. Marks a worker down; an unexpired pause is kept
-- so that it survives the restart.
local name, reason = ARGV[3], ARGV[4]
local e = load(name)
if not e then return reply('unknown') end
if e.state == 'down' then return reply('noop', e) end
take_down(e, reason)
return reply('ok', save(e, 'down', reason))
