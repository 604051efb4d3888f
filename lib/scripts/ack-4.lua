--[[
  Reliable mode: acknowledge messages, removing every trace of them.

  KEYS[1] inflight  KEYS[2] leases  KEYS[3] deliveries  KEYS[4] owners
  ARGV[1] consumer id  ARGV[2..] ids
  Only ids this consumer still owns are acknowledged: one whose lease expired and that went back to
  the queue (or to another consumer) will be delivered again.
  Returns, per id, 1 if acknowledged, 0 if no longer owned.
]]
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[4], id) == ARGV[1] then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
