--[[
  Read up to COUNT messages from id FROM on, without removing them (replay / persistent pub-sub).

  KEYS[1] messages list   KEYS[2] info hash
  ARGV[1] from id   ARGV[2] count   ARGV[3] ttl in ms

  Ids are positions in the queue's log, so the element with id FROM is at index FROM - headId (an
  offset older than the head starts at the head). Raises the w flag when nothing is there yet.
  Returns { implicit id of the first element returned, element, element, … }, or {}.
]]
--@include head
--@include touch
local head = headId(KEYS[1], KEYS[2])
local idx = tonumber(ARGV[1]) - head
if idx < 0 then idx = 0 end
local r = redis.call('LRANGE', KEYS[1], idx, idx + tonumber(ARGV[2]) - 1)
if #r == 0 then
  redis.call('HSET', KEYS[2], 'w', '1')
  keepAtLeast(KEYS[2], tonumber(ARGV[3]))
  return {}
end
table.insert(r, 1, head + idx)
return r
