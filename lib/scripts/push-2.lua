--[[
  Append messages to a queue; with maxLength > 0, only as many as fit. Idempotent per producer batch:
  when a connection drops after Redis ran a push but before the reply arrived, the push is sent again
  (by ioredis after reconnecting, or by a write stream after a failover), and this script answers it
  from the record instead of storing it twice.

  KEYS[1] messages list
  KEYS[2] info hash: seq, consumed, n (incarnation), the flags w (a reader waits for data) and r (a
          producer waits for room), and per producer p<id>, the record of its pushes (fields of a hash
          that exists anyway cost far less than a key per queue): "batch:pushed:seq" of its last push,
          every earlier batch done; or, while some of its batches are unanswered, "floor;b:n:s,b:n:s,…":
          every batch below floor done, and those listed stored (at most 64; see below)
  ARGV[1] ttl in ms (every key touched expires after it unless refreshed; a longer TTL already set stays)
  ARGV[2] maxLength (0 = unbounded): push only what fits, and raise the room flag when something did
          not fit (the producer waits for room); negative: bound at -maxLength without the flag (overflow
          'drop' and 'error': nobody waits)
  ARGV[3] retain (0 = keep all): trim the list to its newest `retain` elements
  ARGV[4] wake-up pub/sub channel
  ARGV[5] producer id   ARGV[6] batch number (grows by one per call of that producer), or
          "batch:low" where low is the producer's oldest batch still unanswered (default: batch): the
          record keeps the batches from low on, so a batch that reaches Redis after a later one of its
          producer (sent again after a connection drop) is still stored, once
  ARGV[7] the incarnation the producer is bound to ('' = not bound yet: push to whatever exists)
  ARGV[8] how many elements: n, when ARGV[9..8+n] are the elements (kind byte + payload, see
          lib/queue/element.ts), in order; -n when ARGV[9] holds them packed, each after its length, 4
          bytes big-endian (one argument for a batch of small messages: see NewElements)

  Returns { number pushed, seq after the push, incarnation }: the pushed messages have ids
  seq - pushed + 1 .. seq. { -1, 0, '' } when the bound incarnation was deleted (nothing is written).
]]
--@include touch
--@include incarnation
local field = 'p' .. ARGV[5]
local info = redis.call('HMGET', KEYS[2], field, 'n')
local inc = incarnation(KEYS[2], info[2], ARGV[7])
if not inc then return { -1, 0, '' } end
local ttl = tonumber(ARGV[1])
local b0, l0 = string.match(ARGV[6], '^(%d+):?(%d*)$')
local batch = tonumber(b0)
local low = tonumber(l0) or batch
-- The record: floor (every batch below it is done) and the batches stored from it on.
local floor, entries = 0, {}
local last = info[1]
if last then
  local f, rest = string.match(last, '^(%d+);(.*)$')
  if not f then rest = last end
  for b, n, s in string.gmatch(rest, '(%d+):(%d+):(%d+)') do
    entries[#entries + 1] = { tonumber(b), n, s }
  end
  floor = tonumber(f) or (entries[1] and entries[1][1]) or 0
  for _, e in ipairs(entries) do
    if e[1] == batch then return { tonumber(e[2]), tonumber(e[3]), inc } end
  end
  if batch < floor then
    -- Done long ago (its producer had its answer): nothing to store. Answered as a duplicate.
    local e = entries[#entries]
    return { tonumber(e and e[2] or 0), tonumber(e and e[3] or 0), inc }
  end
end

local n = tonumber(ARGV[8])
local packed = n < 0
if packed then n = -n end
local maxlen = tonumber(ARGV[2])
local waits = maxlen > 0
if maxlen < 0 then maxlen = -maxlen end
if maxlen > 0 then
  local room = maxlen - redis.call('LLEN', KEYS[1])
  if room < n then
    if room < 0 then room = 0 end
    n = room
    if waits then redis.call('HSET', KEYS[2], 'r', '1') end
  end
end

local seq
if n == 0 then
  seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or 0)
else
  -- RPUSHed 1000 at a time (unpack's limit); packed ones cut out of their argument first.
  if packed then
    local all = ARGV[9]
    local part = {}
    local k = 0
    local at = 1
    for _ = 1, n do
      local len = struct.unpack('>I4', all, at)
      k = k + 1
      part[k] = string.sub(all, at + 4, at + 3 + len)
      at = at + 4 + len
      if k == 1000 then
        redis.call('RPUSH', KEYS[1], unpack(part, 1, k))
        k = 0
      end
    end
    if k > 0 then redis.call('RPUSH', KEYS[1], unpack(part, 1, k)) end
  else
    for i = 9, 8 + n, 1000 do
      redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, 8 + n)))
    end
  end
  seq = redis.call('HINCRBY', KEYS[2], 'seq', n)
  local retain = tonumber(ARGV[3])
  if retain > 0 then redis.call('LTRIM', KEYS[1], -retain, -1) end
  if redis.call('HDEL', KEYS[2], 'w') == 1 then redis.call('PUBLISH', ARGV[4], 'm') end
end
-- The record from the producer's oldest unanswered batch on, in batch order; beyond 64 batches the
-- oldest go and the floor rises past them.
local newFloor = math.max(floor, low)
local kept = {}
for _, e in ipairs(entries) do
  if e[1] >= newFloor then kept[#kept + 1] = e end
end
kept[#kept + 1] = { batch, n, seq }
table.sort(kept, function (a, b) return a[1] < b[1] end)
if #kept > 64 then
  local drop = #kept - 64
  newFloor = kept[drop][1] + 1
  local rest = {}
  for i = drop + 1, #kept do rest[#rest + 1] = kept[i] end
  kept = rest
end
local record
if #kept == 1 and kept[1][1] == newFloor then
  record = batch .. ':' .. n .. ':' .. seq
else
  local parts = {}
  for i, e in ipairs(kept) do parts[i] = e[1] .. ':' .. e[2] .. ':' .. e[3] end
  record = newFloor .. ';' .. table.concat(parts, ',')
end
redis.call('HSET', KEYS[2], field, record)
local keep = keepAtLeast(KEYS[2], ttl)
if n > 0 then touch(KEYS[1], keep) end
return { n, seq, inc }
