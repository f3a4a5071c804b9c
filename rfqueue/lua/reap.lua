-- ARGV[4] heartbeat timeout (seconds). Marks down every worker not yet down whose last
-- heartbeat (see last_beat) is older than the timeout. Returns the changed entries.
local timeout = tonumber(ARGV[4])
local changed = {}
for _, e in ipairs(all_entries()) do
  if e.state ~= 'down' and NOW - last_beat(e.worker) > timeout then
    take_down(e, 'heartbeat')
    changed[#changed + 1] = save(e, 'down', 'heartbeat')
  end
end
return cjson.encode(changed)
