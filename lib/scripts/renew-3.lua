--[[
  Reliable mode: a live consumer extends the leases of the messages it holds.

  KEYS[1] leases  KEYS[2] inflight  KEYS[3] owners (old records only; see inflight.lua)
  ARGV[1] consumer id  ARGV[2] lease ms  ARGV[3..] ids
  Returns the ids this consumer no longer owns (their lease had expired and they were requeued).
]]
--@include now
--@include inflight

local deadline = nowMs() + tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV do
  if ownerOf(redis.call('HGET', KEYS[2], ARGV[i]), ARGV[i], KEYS[3]) == ARGV[1] then
    redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
