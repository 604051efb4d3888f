-- A reliable message in flight: field <id> of the in-flight hash holds its owner, when this delivery
-- began (ms) and the stored element, in one value: '@', the owner's length (one byte), the owner, the
-- time's length (one byte), the time in decimal, then the element (whose first byte, a kind, is never
-- '@'). Its earlier deliveries, when it was delivered before, are in the deliveries hash ("consumer@ms;…");
-- this one joins them only when it ends without an ack (requeue.lua). Its lease deadline is in the
-- leases zset. A record without the '@' header (written before this layout) is the bare element, its
-- owner in the owners hash and this delivery already in the history.
local function inflightRecord(consumer, at, elem)
  return '@' .. string.char(#consumer) .. consumer .. string.char(#at) .. at .. elem
end

-- owner, time of this delivery and element of a record; owner and time are nil for an old record.
local function parseInflight(rec)
  if string.byte(rec, 1) ~= 64 then return nil, nil, rec end
  local cl = string.byte(rec, 2)
  local al = string.byte(rec, 3 + cl)
  return string.sub(rec, 3, 2 + cl), string.sub(rec, 4 + cl, 3 + cl + al), string.sub(rec, 4 + cl + al)
end

-- The owner of an in-flight record `rec` of message `id` (nil when not in flight).
local function ownerOf(rec, id, owners)
  if not rec then return nil end
  local consumer = parseInflight(rec)
  if consumer then return consumer end
  return redis.call('HGET', owners, id)
end
