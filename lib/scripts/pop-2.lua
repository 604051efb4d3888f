--[[
  Take up to COUNT messages from the head of a queue (consume-once).

  KEYS[1] messages list   KEYS[2] info hash
  ARGV[1] count   ARGV[2] ttl in ms   ARGV[3] wake-up pub/sub channel
  ARGV[4] the incarnation the reader is bound to ('' = not bound yet)

  When the queue is empty, raises the w flag (a field of the info hash) so that the next push publishes
  a wake-up. When a producer waits for room (the r flag), publishes 'r'.
  Returns { incarnation, implicit id of the first element, element, element, … }, { incarnation } when
  empty, or { 0 } when the bound incarnation was deleted (nothing is written).
]]
--@include touch
--@include incarnation
local info = redis.call('HMGET', KEYS[2], 'seq', 'n')
local inc = incarnation(KEYS[2], info[2], ARGV[4])
if not inc then return { 0 } end
-- The implicit id of the head element (lib/queue/element.ts).
local head = tonumber(info[1] or 0) - redis.call('LLEN', KEYS[1]) + 1
local r = redis.call('LPOP', KEYS[1], ARGV[1])
if not r then
  redis.call('HSET', KEYS[2], 'w', '1')
  keepAtLeast(KEYS[2], tonumber(ARGV[2]))
  return { inc }
end
redis.call('HINCRBY', KEYS[2], 'consumed', #r)
keepAtLeast(KEYS[2], tonumber(ARGV[2]))
if redis.call('HDEL', KEYS[2], 'r') == 1 then redis.call('PUBLISH', ARGV[3], 'r') end
table.insert(r, 1, head)
table.insert(r, 1, inc)
return r
