-- ARGV[3] worker, ARGV[4] how: '' an operator's forget (a worker that is down), 'force'
-- (whatever its state), or a number of seconds: the rescuers' forget of a worker that is
-- down and has been silent that long, checked here, in the step that removes it.
local name, how = ARGV[3], ARGV[4] or ''
local silent_for = tonumber(how)
local e = load(name)
if not e then
  if redis.call('HEXISTS', WORKERS, name) == 1 then
    redis.call('HDEL', WORKERS, name)
    redis.call('HDEL', HEARTBEATS, name)
    redis.call('HDEL', OUTCOMES, name)
    return reply('ok')
  end
  return reply('unknown')
end
if silent_for then
  if not departed(e, silent_for) then return reply('state', e) end
elseif how ~= 'force' and effective(e) ~= 'down' then
  return reply('state', e)
end
local reason = 'manual'
if silent_for then reason = 'departed' elseif how == 'force' then reason = 'force' end
redis.call('HDEL', WORKERS, name)
redis.call('HDEL', HEARTBEATS, name)
redis.call('HDEL', OUTCOMES, name)
e.version = redis.call('INCR', VERSION)
redis.call('LPUSH', EVENTS, cjson.encode({
  time = NOW, worker = name, action = 'forget', reason = reason, state = e.state,
  ['until'] = NULL, note = NULL, version = e.version,
}))
redis.call('LTRIM', EVENTS, 0, EVENTS_MAX - 1)
redis.call('PUBLISH', CHANNEL, cjson.encode({worker = name, forgotten = true}))
return reply('ok', e)
