--[[
  Read up to COUNT messages from id FROM on, without removing them (replay / persistent pub-sub).

  KEYS[1] messages list   KEYS[2] info hash
  ARGV[1] from id   ARGV[2] count   ARGV[3] ttl in ms
  ARGV[4] the incarnation the reader is bound to ('' = not bound yet)

  Ids are positions in the queue's log, so the element with id FROM is at index FROM - headId (an
  offset older than the head starts at the head). Raises the w flag when nothing is there yet.
  Returns { incarnation, implicit id of the first element returned, element, element, … },
  { incarnation } when there is nothing, or { 0 } when the bound incarnation was deleted.
]]
--@include touch
--@include incarnation
local info = redis.call('HMGET', KEYS[2], 'seq', 'n')
local inc = incarnation(KEYS[2], info[2], ARGV[4])
if not inc then return { 0 } end
-- The implicit id of the head element (lib/queue/element.ts).
local head = tonumber(info[1] or 0) - redis.call('LLEN', KEYS[1]) + 1
local idx = tonumber(ARGV[1]) - head
if idx < 0 then idx = 0 end
local r = redis.call('LRANGE', KEYS[1], idx, idx + tonumber(ARGV[2]) - 1)
if #r == 0 then
  redis.call('HSET', KEYS[2], 'w', '1')
  keepAtLeast(KEYS[2], tonumber(ARGV[3]))
  return { inc }
end
table.insert(r, 1, head + idx)
table.insert(r, 1, inc)
return r
