-- The shard's registry of live queues (lib/keys.ts registryKey): a sorted set of members `q:{name}`,
-- `q:{name}:dl`, `svc:{name}`, `svc:{name}:r`, each scored with a time (ms) by which the queue's last attachment has lapsed: its
-- client sends it about once per ttl (not on every refresh, which would cost each refresh a ZADD) with
-- the score now + 2 x ttl, so a listed queue lapses at most one ttl after its keys expired. One variadic
-- ZADD GT per call (a score only grows: another client's longer attachment is never cut short), the
-- key's own TTL raised to the longest horizon given (so the registry never outlives what it lists), and
-- at most 500 lapsed members swept per call (bounded work; listing skips lapsed members anyway).
-- `entries` is a flat list { score, member, score, member, … }; `longest` the largest horizon (ms).
local function register(registry, now, entries, longest)
  if #entries == 0 then return end
  redis.call('ZADD', registry, 'GT', unpack(entries))
  if redis.call('PTTL', registry) < longest then redis.call('PEXPIRE', registry, longest) end
  local lapsed = redis.call('ZRANGEBYSCORE', registry, '-inf', now, 'LIMIT', 0, 500)
  if #lapsed > 0 then redis.call('ZREM', registry, unpack(lapsed)) end
end
