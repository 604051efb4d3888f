--[[
  Attachments of one client to many queues of one shard, in one call: attach, refresh (heartbeat) or
  detach, and keep every key of each queue alive for another TTL.

  KEYS[i] the info hash of queue i (busmq:q:{name}:i). The other keys of the queue share its prefix and
          hash tag (so they are in the same Cluster slot) and are derived from it here: passing the dozen
          keys of every queue of a batch would cost the client more than the refresh costs Redis.
  ARGV[1] client id   ARGV[2] 'a' attach, 'b' refresh, 'd' detach
  ARGV[2 + i] for queue i: its ttl in ms; with 'd', followed by ';'-separated producer ids whose
          idempotency records (fields p<id>) are dropped: those producers are done
  An attachment is the field a:<client id> of the info hash, valued with the server time at which it
  lapses, so a client that died stops counting after its TTL. Keys that exist get their TTL back; the
  reliable-mode keys (f, l, o: only with d) and the dead-letter queue's (only with dl:i) are looked at
  only when their group exists, so an idle queue costs five commands.
  Returns, with 'a', for each queue 1 when it existed before and 0 when this attach created it;
  otherwise {}.
]]
--@include now

local now = nowMs()
local client = 'a:' .. ARGV[1]
local op = ARGV[2]
local out = {}

local function refresh(base, ttl)
  redis.call('PEXPIRE', base .. ':m', ttl)
  if redis.call('PEXPIRE', base .. ':d', ttl) == 1 then
    redis.call('PEXPIRE', base .. ':f', ttl)
    redis.call('PEXPIRE', base .. ':l', ttl)
    redis.call('PEXPIRE', base .. ':o', ttl)
  end
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
      local fields = redis.call('HGETALL', info)
      for j = 1, #fields, 2 do
        local f = fields[j]
        if string.sub(f, 1, 2) == 'a:' and tonumber(fields[j + 1]) < now then redis.call('HDEL', info, f) end
      end
    end
  end
  if op == 'd' then
    redis.call('HDEL', info, client)
    for producer in string.gmatch(arg, ';([^;]+)') do redis.call('HDEL', info, 'p' .. producer) end
  else
    redis.call('HSET', info, client, now + ttl)
  end
  redis.call('PEXPIRE', info, ttl)
  refresh(base, ttl)
  if redis.call('PEXPIRE', base .. ':dl:i', ttl) == 1 then
    redis.call('PEXPIRE', base .. ':dl:m', ttl)
    redis.call('PEXPIRE', base .. ':dl:h', ttl)
    refresh(base .. ':dl', ttl)
  end
end
return out
