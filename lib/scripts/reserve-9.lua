--[[
  Reliable mode: take up to COUNT messages from the head of the queue and lease them to a consumer.
  First, messages whose lease expired (their consumer died or stalled) go back to the head of the queue
  in id order — or to the dead-letter queue once delivered maxDeliveries times — so they are delivered
  again ahead of newer messages.

  KEYS[1] messages  KEYS[2] info (with the w and r flags)  KEYS[3] inflight (id -> owner, time, element:
  see inflight.lua)  KEYS[4] leases (zset id -> deadline ms)  KEYS[5] deliveries (id -> earlier deliveries
  "consumer@ms;…")  KEYS[6] owners (old records only)  KEYS[7..9] dead-letter messages, info, history
  ARGV[1] count  ARGV[2] ttl ms  ARGV[3] wake channel  ARGV[4] consumer id  ARGV[5] lease ms
  ARGV[6] maxDeliveries  ARGV[7] dead-letter wake channel
  ARGV[8] the incarnation the reader is bound to ('' = not bound yet)

  Returns { incarnation, requeued, dead-lettered, element, id, deliveries, element, id, deliveries, … }
  (deliveries counts this one; requeued and dead-lettered: messages whose lease had expired, put back
  or moved to the dead-letter queue by this call), or { 0 } when the bound incarnation was deleted.
]]
--@include now
--@include head
--@include chunked
--@include touch
--@include inflight
--@include requeue
--@include incarnation

local inc = incarnation(KEYS[2], redis.call('HGET', KEYS[2], 'n'), ARGV[8])
if not inc then return { 0 } end
local now = nowMs()
local ttl = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 1000)
local back, dead = 0, 0
if #expired > 0 then
  back, dead = requeue(expired, tonumber(ARGV[6]), ttl, nil, 0, ARGV[3], ARGV[7])
end

local head = headId(KEYS[1], KEYS[2])
local r = redis.call('LPOP', KEYS[1], ARGV[1])
if not r then
  redis.call('HSET', KEYS[2], 'w', '1')
  keepAtLeast(KEYS[2], ttl)
  return { inc, back, dead }
end
-- One variadic command per structure for the whole batch: a redis.call per message and structure
-- would cost several times the work itself. Two structures per message: the in-flight record (owner,
-- time and element in one value) and the lease. Only a message put back at the head (it carries its id)
-- can have been delivered before: only those have a history to look up.
local consumer = ARGV[4]
local at = tostring(now)
local deadline = now + tonumber(ARGV[5])
local ids, again = {}, {}
for i, elem in ipairs(r) do
  local id = head + i - 1
  if string.byte(elem, 1) >= 128 then
    id = struct.unpack('>I7', elem, 2)
    again[#again + 1] = i
  end
  ids[i] = id
end
local counts = {}
if #again > 0 then
  local hids = {}
  for j, i in ipairs(again) do hids[j] = ids[i] end
  local hists = chunked('HMGET', KEYS[5], hids, 1)
  for j, i in ipairs(again) do counts[i] = countDeliveries(hists[j] or nil) + 1 end
end
local fargs, largs, out = {}, {}, { inc, back, dead }
for i, elem in ipairs(r) do
  local id = ids[i]
  fargs[#fargs + 1] = id; fargs[#fargs + 1] = inflightRecord(consumer, at, elem)
  largs[#largs + 1] = deadline; largs[#largs + 1] = id
  out[#out + 1] = elem
  out[#out + 1] = id
  out[#out + 1] = counts[i] or 1
end
chunked('HSET', KEYS[3], fargs, 2)
chunked('ZADD', KEYS[4], largs, 2)
-- The deliveries hash exists whenever messages are in flight (field '_', never an id), so that a
-- heartbeat that finds it knows the queue's reliable-mode keys are there to refresh (heartbeat.lua).
redis.call('HSET', KEYS[5], '_', '')
redis.call('HINCRBY', KEYS[2], 'consumed', #r)
local keep = keepAtLeast(KEYS[2], ttl)
for i = 3, 6 do touch(KEYS[i], keep) end
if redis.call('HDEL', KEYS[2], 'r') == 1 then redis.call('PUBLISH', ARGV[3], 'r') end
return out
