--[[
  Delete a queue: every key of it and of its dead-letter queue, and tell the streams bound to it.

  KEYS[1..7] the queue's messages, info, inflight, leases, deliveries, owners and history keys
  KEYS[8..14] the same keys of its dead-letter queue
  ARGV[1] the queue's wake-up pub/sub channel   ARGV[2] its dead-letter queue's

  The incarnation (field n of the info hash) goes with the info hash, so every stream bound to this
  incarnation finds it gone at its next call; the 'd' wake-up makes waiting readers and producers
  look at once. The next use of the name creates a fresh queue with a new incarnation.
  Returns the number of keys deleted (0: the queue did not exist).
]]
local n = redis.call('DEL', unpack(KEYS))
redis.call('PUBLISH', ARGV[1], 'd')
redis.call('PUBLISH', ARGV[2], 'd')
return n
