--[[
  Put back, at the head of the queue and in their order, messages a reader took but did not hand on.
  Idempotent per reader give-back: a give-back sent again (its reply was lost to a connection drop) is
  recognised by its record and not stored twice.

  KEYS[1] messages list   KEYS[2] info hash (g<reader> -> number of that reader's last give-back)
  ARGV[1] ttl in ms   ARGV[2] wake-up pub/sub channel
  ARGV[3] the incarnation the reader took them from: when the queue was deleted since, they are not
          put back (that would bring the deleted queue back)
  ARGV[4] reader id   ARGV[5] give-back number
  ARGV[6..] elements in the with-id form (they keep their ids; see lib/queue/element.ts), in order

  Returns the new length of the list, or -1 when the incarnation was deleted (nothing is written).
]]
--@include touch
--@include incarnation
local field = 'g' .. ARGV[4]
local info = redis.call('HMGET', KEYS[2], 'n', field)
if not incarnation(KEYS[2], info[1], ARGV[3]) then return -1 end
local number = tonumber(ARGV[5])
if tonumber(info[2] or 0) >= number then return redis.call('LLEN', KEYS[1]) end
local n = #ARGV - 5
local len = 0
for i = n, 1, -1 do
  len = redis.call('LPUSH', KEYS[1], ARGV[5 + i])
end
redis.call('HINCRBY', KEYS[2], 'consumed', -n)
redis.call('HSET', KEYS[2], field, number)
touch(KEYS[1], keepAtLeast(KEYS[2], tonumber(ARGV[1])))
if redis.call('HDEL', KEYS[2], 'w') == 1 then redis.call('PUBLISH', ARGV[2], 'm') end
return len
