-- ARGV[3] worker. Removes a worker that is not up (a host retired for good).
local name = ARGV[3]
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
if effective(e) == 'up' then return reply('state', e) end
redis.call('HDEL', WORKERS, name)
redis.call('HDEL', HEARTBEATS, name)
redis.call('HDEL', OUTCOMES, name)
e.version = redis.call('INCR', VERSION)
redis.call('LPUSH', EVENTS, cjson.encode({
  time = NOW, worker = name, action = 'forget', reason = 'manual', state = e.state,
  ['until'] = NULL, note = NULL, version = e.version,
}))
redis.call('LTRIM', EVENTS, 0, EVENTS_MAX - 1)
redis.call('PUBLISH', CHANNEL, cjson.encode({worker = name, forgotten = true}))
return reply('ok', e)
