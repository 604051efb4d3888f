-- Expiry that never shortens: clients of one queue may use different TTLs, and the longest in use wins,
-- so one client's short TTL cannot expire keys another (attached, with a longer TTL) still relies on.
-- keepAtLeast(info, ttl) gives the info hash at least `ttl` ms and returns the TTL the queue's other
-- keys should get; touch(key, ttl) gives another key that TTL (a key just created has none: -1).
local function keepAtLeast(info, ttl)
  local cur = redis.call('PTTL', info)
  if cur > ttl then return cur end
  if cur ~= -2 then redis.call('PEXPIRE', info, ttl) end
  return ttl
end

local function touch(key, ttl)
  redis.call('PEXPIRE', key, ttl)
end
