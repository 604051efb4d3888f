--[[
  Put back, at the head of the queue and in their order, messages a reader took but did not hand on.

  KEYS[1] messages list   KEYS[2] info hash
  ARGV[1] ttl in ms   ARGV[2] wake-up pub/sub channel
  ARGV[3] the incarnation the reader took them from: when the queue was deleted since, they are not
          put back (that would bring the deleted queue back)
  ARGV[4..] elements in the with-id form (they keep their ids; see lib/queue/element.ts), in order

  Returns the new length of the list, or -1 when the incarnation was deleted (nothing is written).
]]
--@include incarnation
if not incarnation(KEYS[2], redis.call('HGET', KEYS[2], 'n'), ARGV[3]) then return -1 end
local n = #ARGV - 3
local len = 0
for i = n, 1, -1 do
  len = redis.call('LPUSH', KEYS[1], ARGV[3 + i])
end
redis.call('HINCRBY', KEYS[2], 'consumed', -n)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
if redis.call('HDEL', KEYS[2], 'w') == 1 then redis.call('PUBLISH', ARGV[2], 'm') end
return len
