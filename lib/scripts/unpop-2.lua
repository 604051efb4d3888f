--[[
  Put back, at the head of the queue and in their order, messages a reader took but did not hand on.
  Idempotent per reader give-back: a give-back sent again (its reply was lost to a connection drop) is
  recognised by its record and not stored twice.

  KEYS[1] messages list   KEYS[2] info hash (g<reader> -> number of that reader's last give-back)
  ARGV[1] ttl in ms   ARGV[2] wake-up pub/sub channel   ARGV[3] reader id   ARGV[4] give-back number
  ARGV[5..] elements in the with-id form (they keep their ids; see lib/queue/element.ts), in order
  Returns the new length of the list.
]]
--@include touch
local field = 'g' .. ARGV[3]
local number = tonumber(ARGV[4])
local last = tonumber(redis.call('HGET', KEYS[2], field) or 0)
if last >= number then return redis.call('LLEN', KEYS[1]) end
local n = #ARGV - 4
local len = 0
for i = n, 1, -1 do
  len = redis.call('LPUSH', KEYS[1], ARGV[4 + i])
end
redis.call('HINCRBY', KEYS[2], 'consumed', -n)
redis.call('HSET', KEYS[2], field, number)
local ttl = keepAtLeast(KEYS[2], tonumber(ARGV[1]))
touch(KEYS[1], ttl)
if redis.call('HDEL', KEYS[2], 'w') == 1 then redis.call('PUBLISH', ARGV[2], 'm') end
return len
