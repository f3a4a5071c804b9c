-- ARGV[4] heartbeat timeout (seconds). Marks down every worker not yet down whose last
-- heartbeat (see last_beat) is older than the timeout. Returns the changed entries.
-- ARGV[5] lease (seconds, 0 for none): every worker's rescuer reaps each round, and the
-- scan is O(fleet); with a lease only the first caller in each lease period scans.
local timeout, lease = tonumber(ARGV[4]), tonumber(ARGV[5] or '0') or 0
if lease > 0 and not redis.call('SET', REAP_LEASE, '1', 'NX', 'PX', math.ceil(lease * 1000)) then
  return '[]'
end
local changed = {}
for _, e in ipairs(all_entries()) do
  if e.state ~= 'down' and NOW - last_beat(e.worker) > timeout then
    take_down(e, 'heartbeat')
    changed[#changed + 1] = save(e, 'down', 'heartbeat')
  end
end
return cjson.encode(changed)
