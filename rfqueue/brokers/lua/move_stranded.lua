-- Not a table script (no prelude). Moves up to ARGV[1] messages from the list KEYS[1]
-- (a stranded queue's list) to the list KEYS[2] (an up worker's list of the same
-- priority), one message at a time inside this one atomic call, so a message is never
-- lost nor doubled. The newest is popped first and pushed at the consuming end, so the
-- moved messages keep their order and run before the target's own backlog: they have
-- waited longest. ARGV[2] and ARGV[3] are the old and new routing keys, JSON-encoded:
-- the message's delivery_info is rewritten so that a retry or a restore from the new
-- worker goes to the new queue. A message that is not kombu JSON moves unchanged.
local limit = tonumber(ARGV[1])
local old = '"routing_key": ' .. ARGV[2]
local new = '"routing_key": ' .. ARGV[3]
local moved = 0
while moved < limit do
  local message = redis.call('LPOP', KEYS[1])
  if not message then break end
  local first, last = string.find(message, old, 1, true)
  if first then
    message = string.sub(message, 1, first - 1) .. new .. string.sub(message, last + 1)
  end
  redis.call('RPUSH', KEYS[2], message)
  moved = moved + 1
end
return moved
