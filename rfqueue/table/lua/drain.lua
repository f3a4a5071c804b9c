-- ARGV[3] worker, ARGV[4] reason, ARGV[5] seconds ('': until the worker stops, as its
-- own shutdown asks), ARGV[6] max pause (seconds), ARGV[7] note ('' for none).
-- The worker leaves the routable set at once: no router chooses it, it cancels its
-- consumers, rescuers move its queue; it keeps beating while it finishes what it runs.
-- No budget is checked: a deploy is not chaos (but draining workers count as not up in
-- chaos's budget). A drain that never ends without the worker's stop is not replaced by
-- one that does; a down worker has nothing to drain (status 'state').
-- A paused worker's own shutdown keeps the pause ('noop').
local name, reason, seconds, max_pause, note = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
if note == '' then note = NULL end
local e = load(name)
if not e then return reply('unknown') end
local drain_until = NULL
if seconds ~= '' then
  local s = tonumber(seconds)
  if not (s and s > 0 and s <= max_pause) then return reply('duration', e) end
  drain_until = NOW + s
end
if e.state == 'down' then return reply('state', e) end
-- A paused worker that stops already takes nothing: it keeps its pause (and its end), so
-- that restarted it comes back paused until then.
if seconds == '' and effective(e) == 'paused' then return reply('noop', e) end
local draining = effective(e) == 'draining'
if draining and (e['until'] == nil or e['until'] == NULL) then return reply('noop', e) end
local since = e.since
set_state(e, 'draining', reason, drain_until, note)
e.pause_reason = nil
if draining then e.since = since end  -- the drain under way began then
return reply('ok', save(e, 'drain', reason, note))
