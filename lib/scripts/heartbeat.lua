--[[
  What one client keeps alive on one shard, in one call: attach to, refresh (heartbeat) or detach from
  many queues, and keep persisted objects alive; every key of each gets another TTL.

  KEYS[i] entry i: the info hash of a queue (busmq:q:{name}:i), or the hash of a persisted object
          (busmq:o:{name}:h). The other keys of the queue or object share its prefix and hash tag (so they
          are in the same Cluster slot) and are derived from it here: passing the dozen keys of every
          queue of a batch would cost the client more than the refresh costs Redis.
  KEYS[n] with ARGV[2] = '<op>r<count>': the shard's registry (busmq:registry, lib/keys.ts), in which
          the first <count> entries of the batch (queues) get one ZADD together (member: the queue's
          key from its kind on, `q:{name}`, `q:{name}:dl`, `svc:{name}`…, derived from the info key
          as lib/keys.ts memberOf does), scored now + 2 x ttl: the client sends each queue there
          about once per ttl, not on every refresh (see includes/registry.lua). Not on a Cluster, where
          the registry is in another slot (register-1.lua writes it there).
  ARGV[1] client id   ARGV[2] 'a' attach, 'b' refresh, 'd' detach, followed by 'r<count>' when KEYS[n]
          is the registry
  ARGV[2 + i] for entry i: a queue's ttl in ms; then '/' and the client's roles on it
          (r<readers>w<writers>, stored as field k:<client id>) when they changed; with 'd', followed by
          ';'-separated fields of the info hash to drop (the idempotency records p<producer> and
          g<reader> of producers and readers that are done). For an object: 'o' and its ttl in ms.
  A queue attachment is the field a:<client id> of the info hash, valued with the server time at which it
  lapses, so a client that died stops counting after its TTL. The ttl a refresh or attach sends is the
  horizon the client needs (its TTL, or more when its refreshes are spread out); a detach sends the TTL.
  When the keys hold more than a call gives them and no more than that client's own last refresh gave
  them, they get what the call gives (or what other clients' attachments still hold) even if it is
  shorter. Keys that exist get their TTL back, never a
  shorter one (the longest TTL in use wins; see touch.lua); the reliable-mode keys (f, l, o: only with d)
  and the dead-letter queue's (only with dl:i) are looked at only when their group exists, so an idle
  queue costs a handful of commands. A refresh never creates a queue: one deleted (or expired) since it
  was attached stays gone. An object is never created either: its hash and its change log (:c) only get
  their TTL back, when they exist.
  Returns, with 'a', for each entry 1 when it existed before and 0 when it did not (an attach creates
  a queue, not an object); otherwise {}.
]]
--@include now
--@include touch
--@include registry

local now = nowMs()
local client = 'a:' .. ARGV[1]
local roles = 'k:' .. ARGV[1]
local op = string.sub(ARGV[2], 1, 1)
local count = #KEYS
local registry = nil
local registered = 0
if string.sub(ARGV[2], 2, 2) == 'r' then
  registry = KEYS[count]
  registered = tonumber(string.sub(ARGV[2], 3))
  count = count - 1
end
local entries = {}
local n = 0
local longest = 0
local out = {}

-- A queue's registry member: its info key from the kind (the segment before '{') to before ':i'.
local function member(info)
  local brace = string.find(info, '{', 1, true)
  local colon = string.match(string.sub(info, 1, brace - 2), '.*():')
  return string.sub(info, colon + 1, -3)
end

-- The queue's other keys, the reliable-mode ones only when they exist (d exists whenever f and l do:
-- reserve-9.lua; o only holds owners of records of the earlier layout),
-- and a dead-letter queue's history.
local function refresh(base, ttl)
  touch(base .. ':m', ttl)
  if redis.call('PEXPIRE', base .. ':d', ttl) == 1 then
    touch(base .. ':f', ttl)
    touch(base .. ':l', ttl)
    touch(base .. ':o', ttl)
  end
  if string.sub(base, -3) == ':dl' then touch(base .. ':h', ttl) end
end

-- Calls fn(field, lapses) for each attachment (field a:<client id>) of the queue's info hash.
local function eachAttachment(info, fn)
  local cursor = '0'
  repeat
    local page = redis.call('HSCAN', info, cursor, 'MATCH', 'a:*', 'COUNT', 100)
    cursor = page[1]
    local fields = page[2]
    for j = 1, #fields, 2 do fn(fields[j], tonumber(fields[j + 1])) end
  until cursor == '0'
end

-- `keep`, or longer while an attachment in the info hash holds the queue longer (ms from now).
local function atLeastAttached(info, keep)
  eachAttachment(info, function (_, lapses)
    if lapses - now > keep then keep = lapses - now end
  end)
  return keep
end

local function queue(i, info, arg)
  -- (Most refreshes' argument is the ttl alone.)
  local ttl = tonumber(arg) or tonumber(string.match(arg, '^%d+'))
  local base = string.sub(info, 1, -3)
  local left = redis.call('PTTL', info)
  if op == 'b' then
    if left == -2 then return end
  elseif op == 'a' then
    out[i] = left == -2 and 0 or 1
    if left ~= -2 then
      -- Attachments of clients that died without detaching: forget them (and their roles).
      eachAttachment(info, function (field, lapses)
        if lapses < now then redis.call('HDEL', info, field, 'k:' .. string.sub(field, 3)) end
      end)
    end
  end
  -- When the keys hold more than this call gives them: when this client's own last refresh (its
  -- attachment field, read before it changes) gave them that, it may be taken back (below).
  local own = nil
  if left > ttl then own = tonumber(redis.call('HGET', info, client)) end
  if op == 'd' then
    redis.call('HDEL', info, client, roles)
    for field in string.gmatch(arg, ';([^;]+)') do redis.call('HDEL', info, field) end
  elseif tonumber(arg) or not string.find(arg, '/', 1, true) then
    redis.call('HSET', info, client, now + ttl)
  else
    local r = string.match(arg, '/(%w*)')
    if r == '' then
      redis.call('HSET', info, client, now + ttl)
      redis.call('HDEL', info, roles)
    else redis.call('HSET', info, client, now + ttl, roles, r) end
  end
  if i <= registered then
    entries[n + 1] = now + 2 * ttl
    entries[n + 2] = member(info)
    n = n + 2
    if ttl > longest then longest = ttl end
  end
  -- (left == -1: the hash was just created by the HSET above, with no TTL yet.)
  local keep = ttl
  -- The keys hold what this client's own last refresh gave them (within 100 ms: `now` is the script's
  -- start, while Redis may count a PEXPIRE from the moment it runs, later in a call of many queues), more
  -- than this call gives: its refreshes were spread out (a horizon of three periods,
  -- lib/queue/attachments.ts) and it detaches, or its horizon shrank. Nobody else asked for that much, so
  -- the queue gets what this call gives, or what the attachments of other clients still hold.
  local shortened = own and now + left <= own + 100
  if shortened then
    keep = atLeastAttached(info, keep)
    redis.call('PEXPIRE', info, keep)
  elseif left > ttl then keep = left else redis.call('PEXPIRE', info, ttl) end
  refresh(base, keep)
  local dlInfo = base .. ':dl:i'
  local dlTtl = redis.call('PTTL', dlInfo)
  if dlTtl ~= -2 then
    local dlKeep = keep
    if shortened then
      -- (Clients may be attached to the dead-letter queue itself.)
      dlKeep = atLeastAttached(dlInfo, keep)
      redis.call('PEXPIRE', dlInfo, dlKeep)
    elseif dlTtl > keep then dlKeep = dlTtl else redis.call('PEXPIRE', dlInfo, keep) end
    touch(base .. ':dl:m', dlKeep)
    refresh(base .. ':dl', dlKeep)
  end
end

local function object(i, hash, arg)
  local ttl = tonumber(string.sub(arg, 2))
  local left = redis.call('PTTL', hash)
  if op == 'a' then out[i] = left == -2 and 0 or 1 end
  if left == -2 then return end
  local keep = ttl
  if left > ttl then keep = left else redis.call('PEXPIRE', hash, ttl) end
  touch(string.sub(hash, 1, -3) .. ':c', keep)
end

for i = 1, count do
  local arg = ARGV[2 + i]
  if string.sub(arg, 1, 1) == 'o' then object(i, KEYS[i], arg) else queue(i, KEYS[i], arg) end
end
if registry then register(registry, now, entries, 2 * longest) end
return out
