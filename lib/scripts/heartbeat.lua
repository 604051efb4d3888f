--[[
  What one client keeps alive on one shard, in one call: attach to, refresh (heartbeat) or detach from
  many queues, and keep persisted objects alive; every key of each gets another TTL.

  KEYS[i] entry i: the info hash of a queue (busmq:q:{name}:i), or the hash of a persisted object
          (busmq:o:{name}:h). The other keys of the queue or object share its prefix and hash tag (so they
          are in the same Cluster slot) and are derived from it here: passing the dozen keys of every
          queue of a batch would cost the client more than the refresh costs Redis.
  ARGV[1] client id   ARGV[2] 'a' attach, 'b' refresh, 'd' detach
  ARGV[2 + i] for entry i: a queue's ttl in ms, with 'd' followed by ';'-separated producer ids whose
          idempotency records (fields p<id>) are dropped: those producers are done; or, for an object,
          'o' and its ttl in ms
  A queue attachment is the field a:<client id> of the info hash, valued with the server time at which it
  lapses, so a client that died stops counting after its TTL. Keys that exist get their TTL back; the
  reliable-mode keys (f, l, o: only with d) and the dead-letter queue's (only with dl:i) are looked at
  only when their group exists, so an idle queue costs five commands. A refresh never creates a queue:
  one deleted (or expired) since it was attached stays gone. An object is never created either: its
  hash and its change log (:c) only get their TTL back, when they exist.
  Returns, with 'a', for each entry 1 when it existed before and 0 when it did not (an attach creates
  a queue, not an object); otherwise {}.
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

local function queue(i, info, arg)
  local ttl = tonumber(string.match(arg, '^%d+'))
  local base = string.sub(info, 1, -3)
  if op == 'b' then
    if redis.call('PEXPIRE', info, ttl) == 0 then return end
  elseif op == 'a' then
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
  if op ~= 'b' then redis.call('PEXPIRE', info, ttl) end
  refresh(base, ttl)
  if redis.call('PEXPIRE', base .. ':dl:i', ttl) == 1 then
    redis.call('PEXPIRE', base .. ':dl:m', ttl)
    redis.call('PEXPIRE', base .. ':dl:h', ttl)
    refresh(base .. ':dl', ttl)
  end
end

local function object(i, hash, arg)
  local ttl = tonumber(string.sub(arg, 2))
  local existed = redis.call('PEXPIRE', hash, ttl)
  redis.call('PEXPIRE', string.sub(hash, 1, -3) .. ':c', ttl)
  if op == 'a' then out[i] = existed end
end

for i, key in ipairs(KEYS) do
  local arg = ARGV[2 + i]
  if string.sub(arg, 1, 1) == 'o' then object(i, key, arg) else queue(i, key, arg) end
end
return out
