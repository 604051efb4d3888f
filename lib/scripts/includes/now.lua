-- Server time in ms: every lease deadline is on the shard's clock, so client clocks never matter.
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
