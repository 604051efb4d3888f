--[[
  Registry writes on a Redis Cluster, where the registry (one key, one slot) cannot be written by the
  heartbeat of queues in other slots: one call per heartbeat batch, sent to the registry's node.

  KEYS[1] the registry (busmq:registry): zset of members `q:{name}`, `q:{name}:dl`, `svc:{name}`…, scored now + 2 x ttl
          (see includes/registry.lua)
  ARGV[1..] pairs: ttl in ms, member
  Returns the number of members written.
]]
--@include now
--@include registry

local now = nowMs()
local entries = {}
local longest = 0
for i = 1, #ARGV, 2 do
  local ttl = tonumber(ARGV[i])
  if 2 * ttl > longest then longest = 2 * ttl end
  entries[#entries + 1] = now + 2 * ttl
  entries[#entries + 1] = ARGV[i + 1]
end
register(KEYS[1], now, entries, longest)
return #entries / 2
