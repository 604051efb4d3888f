--[[
  Reliable mode: acknowledge messages, removing every trace of them.

  KEYS[1] inflight  KEYS[2] leases  KEYS[3] deliveries  KEYS[4] owners (old records only; see inflight.lua)
  ARGV[1] consumer id  ARGV[2..] ids
  Only ids this consumer still owns are acknowledged: one whose lease expired and that went back to
  the queue (or to another consumer) will be delivered again.
  Returns, per id, 1 if acknowledged, 0 if no longer owned.
]]
--@include chunked
--@include inflight

local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
local recs = chunked('HMGET', KEYS[1], ids, 1)
local mine, out = {}, {}
for i, id in ipairs(ids) do
  if ownerOf(recs[i] or nil, id, KEYS[4]) == ARGV[1] then
    mine[#mine + 1] = id
    out[i] = 1
  else
    out[i] = 0
  end
end
if #mine > 0 then
  chunked('HDEL', KEYS[1], mine, 1)
  chunked('ZREM', KEYS[2], mine, 1)
  chunked('HDEL', KEYS[3], mine, 1)
  chunked('HDEL', KEYS[4], mine, 1)
end
return out
