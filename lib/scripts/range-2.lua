--[[
  Read up to COUNT messages with id >= FROM without removing them (replay / persistent pub-sub).

  KEYS[1] messages list   KEYS[2] waiters flag
  ARGV[1] from id   ARGV[2] count   ARGV[3] ttl in ms

  The list is ordered by id (pushes append, pops and trims remove from the head), so the element
  with id FROM is normally at index FROM - headId; when a put-back broke that, a binary search finds
  the first element with id >= FROM. Sets the waiters flag when nothing is there yet.
  Returns the elements (header + payload).
]]
local key = KEYS[1]
local from = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local len = redis.call('LLEN', key)

local function idat(i)
  local _, id = struct.unpack('>BI7', redis.call('LINDEX', key, i))
  return id
end

local idx = nil
if len > 0 then
  local head = idat(0)
  if from <= head then
    idx = 0
  else
    local guess = from - head
    if guess < len and idat(guess) == from then
      idx = guess
    elseif idat(len - 1) >= from then
      local lo, hi = 0, len - 1
      while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if idat(mid) >= from then hi = mid else lo = mid + 1 end
      end
      idx = lo
    end
  end
end
if idx == nil then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return {}
end
return redis.call('LRANGE', key, idx, idx + count - 1)
