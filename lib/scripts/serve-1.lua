--[[
  A service server announces itself, and how busy it is, in the service's servers hash; or leaves it.

  KEYS[1] servers hash (busmq:svc:{name}:s): server id ->
          "<lapses at ms>:<running>:<concurrency>:<reliable 0|1>[:<handled per latency bucket>]"
  ARGV[1] server id
  ARGV[2] 'b' announce or refresh, 'd' leave
  ARGV[3] ttl in ms: the entry lapses this long after the call, and the hash expires this long after the
          last call (a server refreshes every ttl / 3 and when its running count changes)
  ARGV[4] "<running>:<concurrency>:<reliable 0|1>[:<handled per latency bucket>]", stored as is (the last
          part: comma-separated counts of the requests the server finished recently, per bucket of
          lib/metrics/latency-histogram.ts, trailing zeros left out; see lib/service/server-status.ts)
  Entries that lapsed (their server died without leaving) are removed.
  Returns the number of servers announced after the call.
]]
--@include now

local now = nowMs()
local ttl = tonumber(ARGV[3])
if ARGV[2] == 'd' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], (now + ttl) .. ':' .. ARGV[4])
end
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  local lapse = tonumber(string.match(all[i + 1], '^(%d+)')) or 0
  if lapse < now then redis.call('HDEL', KEYS[1], all[i]) else n = n + 1 end
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return n
