-- Not a table script (no prelude). Restores one unacknowledged message of a dead
-- worker, the way kombu restores one after its visibility timeout, but now.
-- KEYS[1] kombu's unacked hash, KEYS[2] its unacked index, KEYS[3] the list to push to.
-- ARGV[1] delivery tag, ARGV[2] the hash value as read before, ARGV[3] the message.
-- Only if the entry is still what was read: an ack or a restore in between wins.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[3])
return 1
