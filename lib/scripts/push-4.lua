--[[
  Append messages to a queue, giving each the next id.

  KEYS[1] messages list        KEYS[2] info hash (seq, consumed)
  KEYS[3] waiters flag         KEYS[4] room flag
  ARGV[1] ttl in ms (every key touched expires after it unless refreshed)
  ARGV[2] maxLength (0 = unbounded): push only what fits, set the room flag if something did not fit
  ARGV[3] retain (0 = keep all): trim the list to its newest `retain` elements
  ARGV[4] kind of element: 0 = data, 1 = end marker
  ARGV[5] wake-up pub/sub channel
  ARGV[6..] payloads, in order

  Each element is struct '>BI7' (kind, id) followed by the payload.
  Returns { number pushed, id of the first pushed }.
]]
local ttl = tonumber(ARGV[1])
local maxlen = tonumber(ARGV[2])
local retain = tonumber(ARGV[3])
local kind = tonumber(ARGV[4])
local n = #ARGV - 5

if maxlen > 0 then
  local room = maxlen - redis.call('LLEN', KEYS[1])
  if room < n then
    if room < 0 then room = 0 end
    n = room
    redis.call('SET', KEYS[4], '1', 'PX', ttl)
  end
end
if n == 0 then return { 0, 0 } end

local last = redis.call('HINCRBY', KEYS[2], 'seq', n)
local first = last - n + 1
local batch = {}
for i = 1, n do
  batch[#batch + 1] = struct.pack('>BI7', kind, first + i - 1) .. ARGV[5 + i]
  if #batch == 1000 then
    redis.call('RPUSH', KEYS[1], unpack(batch))
    batch = {}
  end
end
if #batch > 0 then redis.call('RPUSH', KEYS[1], unpack(batch)) end
if retain > 0 then redis.call('LTRIM', KEYS[1], -retain, -1) end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
if redis.call('DEL', KEYS[3]) == 1 then redis.call('PUBLISH', ARGV[5], 'm') end
return { n, first }
