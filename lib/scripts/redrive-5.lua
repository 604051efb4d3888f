--[[
  Moves up to COUNT messages from the head of a queue's dead-letter queue back to the tail of the queue
  (the dashboard's admin action "retry dead letters"). They get new ids there, as pushes do; their
  dead-letter records go. maxLength is not applied: an operator asked for it.

  KEYS[1] dead-letter messages   KEYS[2] dead-letter info   KEYS[3] dead-letter history
  KEYS[4] messages               KEYS[5] info
  ARGV[1] count   ARGV[2] ttl in ms   ARGV[3] the queue's wake-up pub/sub channel
  Returns the number of messages moved (0 when the dead-letter queue is empty).
]]
--@include head

local dlHead = headId(KEYS[1], KEYS[2])
local r = redis.call('LPOP', KEYS[1], ARGV[1])
if not r then return 0 end
local ttl = tonumber(ARGV[2])
local plain, ids = {}, {}
for i, elem in ipairs(r) do
  local kind = string.byte(elem, 1)
  local id = dlHead + i - 1
  if kind >= 128 then
    -- Put back at the head of the dead-letter queue with its id (lib/queue/element.ts): drop the id.
    id = struct.unpack('>I7', elem, 2)
    elem = string.char(kind - 128) .. string.sub(elem, 9)
  end
  plain[i] = elem
  ids[i] = id
end
for i = 1, #plain, 1000 do
  redis.call('RPUSH', KEYS[4], unpack(plain, i, math.min(i + 999, #plain)))
  redis.call('HDEL', KEYS[3], unpack(ids, i, math.min(i + 999, #ids)))
end
redis.call('HINCRBY', KEYS[5], 'seq', #plain)
redis.call('HINCRBY', KEYS[2], 'consumed', #plain)
redis.call('PEXPIRE', KEYS[4], ttl)
redis.call('PEXPIRE', KEYS[5], ttl)
if redis.call('HDEL', KEYS[5], 'w') == 1 then redis.call('PUBLISH', ARGV[3], 'm') end
return #plain
