-- ARGV[3] heartbeat timeout (seconds). Marks down every worker not yet down whose last
-- heartbeat (see last_beat) is older than the timeout. Returns the changed entries.
-- ARGV[4] lease (seconds, 0 for none): every worker's rescuer reaps each round, and the
-- scan is O(fleet); with a lease only the first caller in each lease period scans.
local timeout, lease = tonumber(ARGV[3]), tonumber(ARGV[4] or '0') or 0
if lease > 0 and not redis.call('SET', REAP_LEASE, '1', 'NX', 'PX', math.ceil(lease * 1000)) then
  return reply_entries({})
end
-- Compare numbers first and decode only the silent workers' entries: decoding every
-- entry made a scan of 10,000 workers block Redis for about 50 ms.
local since = tonumber(redis.call('HGET', LIVENESS, 'since')) or 0
if NOW - since <= timeout then return reply_entries({}) end  -- silence counts from when beats resumed
local beats, freshest = {}, 0
local flat = redis.call('HGETALL', HEARTBEATS)
for i = 1, #flat, 2 do
  local beat = tonumber(flat[i + 1])
  beats[flat[i]] = beat
  if beat and beat > freshest then freshest = beat end
end
-- Nobody at all has beaten within the timeout, not even the live process asking: the
-- table was out of reach (an outage, a failover), not a dead fleet. Wait for the beats.
if NOW - freshest > timeout then return reply_entries({}) end
local changed = {}
for _, name in ipairs(redis.call('HKEYS', WORKERS)) do
  if NOW - math.max(beats[name] or 0, since) > timeout then
    local e = load(name)
    if e and e.state ~= 'down' then
      take_down(e, 'heartbeat')
      changed[#changed + 1] = save(e, 'down', 'heartbeat')
    end
  end
end
return reply_entries(changed)
