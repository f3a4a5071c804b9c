-- Not a table script (no prelude). Moves, in one atomic call, the stranded messages of the
-- list KEYS[1] (a queue's list of one priority) whose task and pool have somewhere to go,
-- to the lists KEYS[2..] (up workers' lists of the same priority); the others stay, in
-- their order. A message is never lost nor doubled: every message this call pops is
-- pushed back, to a target or to where it was.
-- ARGV[1] how many messages to look at, from the newest end, after skipping ARGV[2] (those
-- an earlier call of this round kept), ARGV[3] the old routing key and ARGV[4 + i] the
-- new one of KEYS[1 + i] (JSON strings), ARGV[4] the plan: JSON {"<task>\n<pool>":
-- [target KEYS index, ...]}, the targets of that key's messages in turn. The key is read
-- from the message's headers (task, rfqueue-pool; '' if missing). The newest is taken
-- first and pushed at the consuming end, so moved messages keep their order (across
-- calls too) and run before the target's own backlog: they have waited longest. Their
-- delivery_info's routing key names the new queue, so a retry or a restore from the new
-- worker goes there. Returns JSON {kept = n of the looked-at that stayed, moved = [n per
-- target]}.
local window, offset = tonumber(ARGV[1]), tonumber(ARGV[2])
local old = '"routing_key": ' .. ARGV[3]
local plan = cjson.decode(ARGV[4])

local function key_of(message)
  local ok, m = pcall(cjson.decode, message)
  if not ok or type(m) ~= 'table' or type(m.headers) ~= 'table' then return '\n' end
  local task, pool = m.headers.task, m.headers['rfqueue-pool']
  if type(task) ~= 'string' then task = '' end
  if type(pool) ~= 'string' then pool = '' end
  return task .. '\n' .. pool
end

local function readdressed(message, index)
  local first, last = string.find(message, old, 1, true)
  if not first then return message end
  local new = '"routing_key": ' .. ARGV[3 + index]
  return string.sub(message, 1, first - 1) .. new .. string.sub(message, last + 1)
end

local popped = {}
for _ = 1, offset + window do
  local message = redis.call('LPOP', KEYS[1])
  if not message then break end
  popped[#popped + 1] = message
end
local kept, counts, turns, total = {}, {}, {}, 0
for index = 2, #KEYS do counts[index - 1] = 0 end
for i, message in ipairs(popped) do
  local key = i > offset and key_of(message) or nil
  local targets = key and plan[key]
  if targets and #targets > 0 then
    turns[key] = (turns[key] or 0) + 1
    local index = targets[(turns[key] - 1) % #targets + 1]
    redis.call('RPUSH', KEYS[index], readdressed(message, index))
    counts[index - 1] = counts[index - 1] + 1
    total = total + 1
  else
    kept[#kept + 1] = message
  end
end
for j = #kept, 1, -1 do redis.call('LPUSH', KEYS[1], kept[j]) end
return cjson.encode({kept = math.max(#popped - offset, 0) - total, moved = counts})
