--[[
  Channel presence heartbeat: announce this peer and look for the other one.

  KEYS[1] this peer's presence key   KEYS[2] the other peer's presence key
  ARGV[1] this peer's instance id    ARGV[2] expiry in ms    ARGV[3] 'beat' or 'leave'
  ARGV[4] pub/sub channel the other peer listens on for presence changes
  A peer that appears or leaves publishes on the other's channel, so it learns at once instead of at
  its next heartbeat.
  Returns the other peer's instance id, or nil when it is not there.
]]
if ARGV[3] == 'beat' then
  local before = redis.call('GET', KEYS[1])
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if before ~= ARGV[1] then redis.call('PUBLISH', ARGV[4], 'up') end
elseif redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[4], 'down')
end
return redis.call('GET', KEYS[2])
