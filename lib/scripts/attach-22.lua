--[[
  Heartbeat of an attached client: keep every key of the queue alive for another TTL.

  KEYS[1] clients zset   KEYS[2] info hash   KEYS[3..22] every other key of the queue and of its
  dead-letter queue (all in the same hash slot), whose expiry is refreshed (QueueKeys.attachKeys()).
  The number of keys is fixed: with a variable count first among the arguments, the Cluster client
  would route the call by the slot of that number.
  ARGV[1] client id   ARGV[2] ttl in ms   ARGV[3] 1 = attach/refresh, 0 = detach

  Clients are scored by the server time at which their attachment lapses, so a client that died
  without detaching stops counting after its TTL. The info hash is created so an attached, empty
  queue exists.
  Returns the number of clients attached.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('HSET', KEYS[2], 'seq', 0) end
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
return redis.call('ZCARD', KEYS[1])
