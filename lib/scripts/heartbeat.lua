--[[
  Attachments of one client to many queues of one shard, in one call: attach, refresh (heartbeat) or
  detach, and keep every key of each queue alive for another TTL.

  KEYS[i] the info hash of queue i (busmq:q:{name}:i). The other keys of the queue share its prefix and
          hash tag (so they are in the same Cluster slot) and are derived from it here: passing the dozen
          keys of every queue of a batch would cost the client more than the refresh costs Redis.
  ARGV[1] client id   ARGV[2] 'a' attach, 'b' refresh, 'd' detach
  ARGV[2 + i] for queue i: its ttl in ms; with 'd', followed by ';'-separated fields of the info hash
          to drop: the idempotency records (p<producer>, g<reader>) of producers and readers that are done
  An attachment is the field a:<client id> of the info hash, valued with the server time at which it
  lapses, so a client that died stops counting after its TTL. Keys that exist get their TTL back (never
  a shorter one: the longest TTL in use wins); the reliable-mode keys (f, l, o: only with d) and the
  dead-letter queue's (only with dl:i) are looked at only when their group exists, so an idle queue
  costs a handful of commands.
  Returns, with 'a', for each queue 1 when it existed before and 0 when this attach created it;
  otherwise {}.
]]
--@include now
--@include touch

local now = nowMs()
local client = 'a:' .. ARGV[1]
local op = ARGV[2]
local out = {}

-- The queue's other keys (never a shorter TTL than they have: see touch.lua), the reliable-mode ones
-- only when they exist (d exists whenever f, l and o do), and a dead-letter queue's history.
local function refresh(base, ttl)
  touch(base .. ':m', ttl)
  if redis.call('PEXPIRE', base .. ':d', ttl) == 1 then
    touch(base .. ':f', ttl)
    touch(base .. ':l', ttl)
    touch(base .. ':o', ttl)
  end
  if string.sub(base, -3) == ':dl' then touch(base .. ':h', ttl) end
end

for i, info in ipairs(KEYS) do
  local arg = ARGV[2 + i]
  local ttl = tonumber(string.match(arg, '^%d+'))
  local base = string.sub(info, 1, -3)
  if op == 'a' then
    local existed = redis.call('EXISTS', info)
    out[i] = existed
    if existed == 1 then
      -- Attachments of clients that died without detaching: forget them.
      local cursor = '0'
      repeat
        local page = redis.call('HSCAN', info, cursor, 'MATCH', 'a:*', 'COUNT', 100)
        cursor = page[1]
        local fields = page[2]
        for j = 1, #fields, 2 do
          if tonumber(fields[j + 1]) < now then redis.call('HDEL', info, fields[j]) end
        end
      until cursor == '0'
    end
  end
  if op == 'd' then
    redis.call('HDEL', info, client)
    for field in string.gmatch(arg, ';([^;]+)') do redis.call('HDEL', info, field) end
  else
    redis.call('HSET', info, client, now + ttl)
  end
  local keep = keepAtLeast(info, ttl)
  refresh(base, keep)
  local dlInfo = base .. ':dl:i'
  local dlTtl = redis.call('PTTL', dlInfo)
  if dlTtl ~= -2 then
    local dlKeep = keep
    if dlTtl > keep then dlKeep = dlTtl else redis.call('PEXPIRE', dlInfo, keep) end
    touch(base .. ':dl:m', dlKeep)
    refresh(base .. ':dl', dlKeep)
  end
end
return out
