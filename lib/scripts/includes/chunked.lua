-- redis.call(cmd, key, args…) in slices of at most 1000 arguments (Lua's unpack has a stack limit),
-- each slice a whole number of `width`-argument groups. Returns the replies of HMGET-like commands
-- concatenated, in order.
local function chunked(cmd, key, args, width)
  local out = {}
  local step = 1000 - (1000 % width)
  for i = 1, #args, step do
    local r = redis.call(cmd, key, unpack(args, i, math.min(i + step - 1, #args)))
    if type(r) == 'table' then for _, v in ipairs(r) do out[#out + 1] = v end end
  end
  return out
end
