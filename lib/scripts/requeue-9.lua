--[[
  Reliable mode: a consumer hands back messages it holds — on graceful close (release), on nack()
  (retry now, or dead-letter once delivered maxDeliveries times), or straight to the dead-letter queue.
  Only ids this consumer still owns are touched.

  KEYS[1..9] as in reserve-9.lua
  ARGV[1] consumer id  ARGV[2] ttl ms  ARGV[3] wake channel  ARGV[4] dead-letter wake channel
  ARGV[5] maxDeliveries  ARGV[6] 'release' | 'nack' | 'dead' (dead-letter on demand) | 'decode' (dead-letter an
  undecodable payload)
  ARGV[7] undo: how many of the ids (the first ones) were never handed to the application
  ARGV[8..] ids
  Returns { requeued, dead-lettered }.
]]
--@include touch
--@include inflight
--@include requeue

local ids = {}
local undo = tonumber(ARGV[7])
local undoOwned = 0
for i = 8, #ARGV do
  if ownerOf(redis.call('HGET', KEYS[3], ARGV[i]), ARGV[i], KEYS[6]) == ARGV[1] then
    ids[#ids + 1] = ARGV[i]
    if i - 7 <= undo then undoOwned = undoOwned + 1 end
  end
end
-- A release counts like any other end of a delivery: the application had the message (deliveries
-- that never reached it were struck by `undo`), so maxDeliveries applies.
local maxDeliveries = tonumber(ARGV[5])
local force = nil
if ARGV[6] == 'dead' then force = 'nack' elseif ARGV[6] == 'decode' then force = 'decode' end
local back, dead = requeue(ids, maxDeliveries, tonumber(ARGV[2]), force, undoOwned, ARGV[3], ARGV[4])
return { back, dead }
