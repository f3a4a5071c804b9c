-- Not a table script (no prelude). The depth of each queue named in ARGV[4..], its
-- priority lists included, in kombu's layout (see redis_layout.py): one reply of
-- integers instead of one LLEN reply per list, which a client parses in Python.
-- ARGV[1] the global key prefix, ARGV[2] the priority separator, ARGV[3] the priority
-- steps, comma-separated ("0,3,6,9"; step 0 is the queue's own list).
local prefix, sep = ARGV[1], ARGV[2]
local suffixes = {}
for step in string.gmatch(ARGV[3], '[^,]+') do
  suffixes[#suffixes + 1] = (tonumber(step) == 0) and '' or (sep .. step)
end
local depths = {}
for i = 4, #ARGV do
  local n = 0
  for _, suffix in ipairs(suffixes) do
    n = n + redis.call('LLEN', prefix .. ARGV[i] .. suffix)
  end
  depths[#depths + 1] = n
end
return depths
