--[[
  Shared by reserve and requeue. Expects KEYS laid out as:
  KEYS[1] messages  KEYS[2] info  KEYS[3] inflight  KEYS[4] leases  KEYS[5] deliveries (history)
  KEYS[6] owners (of in-flight records written before the owner moved into them; see inflight.lua)
  KEYS[7] dead-letter messages  KEYS[8] dead-letter info  KEYS[9] dead-letter history
  (the w flag of a queue, a reader waiting for data, is a field of its info hash)
]]

-- Number of deliveries recorded in a history string "consumer@ms;consumer@ms;…".
local function countDeliveries(hist)
  if not hist then return 0 end
  local _, n = string.gsub(hist, ';', '')
  return n
end

-- Forget an in-flight message everywhere but in the deliveries history.
local function dropInflight(id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[6], id)
end

-- Kind byte and payload of a stored element (lib/queue/element.ts: kind | 0x80 means an id follows).
local function splitElement(elem)
  local kind = string.byte(elem, 1)
  if kind >= 128 then return kind - 128, string.sub(elem, 9) end
  return kind, string.sub(elem, 2)
end

-- The with-id form of an element, for putting it back at the head of a queue.
local function withId(elem, id)
  if string.byte(elem, 1) >= 128 then return elem end
  local kind, payload = splitElement(elem)
  return struct.pack('>BI7', kind + 128, id) .. payload
end

-- Move an element to the dead-letter queue (where it gets the next id), recording why and its
-- delivery history.
local function deadLetter(id, elem, reason, ttl)
  local hist = redis.call('HGET', KEYS[5], id) or ''
  local kind, payload = splitElement(elem)
  redis.call('RPUSH', KEYS[7], string.char(kind) .. payload)
  local dlid = redis.call('HINCRBY', KEYS[8], 'seq', 1)
  local deliveries = {}
  for consumer, at in string.gmatch(hist, '([^@;]+)@(%d+);') do
    deliveries[#deliveries + 1] = { consumer = consumer, at = tonumber(at) }
  end
  redis.call('HSET', KEYS[9], dlid, cjson.encode({ id = tonumber(id), reason = reason, deliveries = deliveries }))
  redis.call('HDEL', KEYS[5], id)
  local keep = keepAtLeast(KEYS[8], ttl)
  touch(KEYS[7], keep)
  touch(KEYS[9], keep)
  return dlid
end

-- Put in-flight ids back at the head of the queue in id order, or dead-letter those delivered
-- maxDeliveries times (or all of them, for reason `force`, when force is not nil). undo = how many of the first ids (in the
-- order given) were never handed to the application: their last delivery is struck from the history.
local function requeue(ids, maxDeliveries, ttl, force, undo, wake, dlwake)
  local items = {}
  for i, id in ipairs(ids) do
    local rec = redis.call('HGET', KEYS[3], id)
    if rec then
      local consumer, at, elem = parseInflight(rec)
      items[#items + 1] = { id = tonumber(id), key = id, elem = elem, consumer = consumer, at = at, undo = i <= undo }
    end
  end
  table.sort(items, function(a, b) return a.id < b.id end)
  local back, dead = 0, 0
  for i = #items, 1, -1 do
    local it = items[i]
    dropInflight(it.key)
    local hist = redis.call('HGET', KEYS[5], it.key)
    if it.consumer then
      -- This delivery ends without an ack: it joins the history, unless it never reached the application.
      if not it.undo then
        hist = (hist or '') .. it.consumer .. '@' .. it.at .. ';'
        redis.call('HSET', KEYS[5], it.key, hist)
      end
    elseif it.undo and hist then
      -- An old record: this delivery is in the history already; strike it.
      hist = string.gsub(hist, '[^;]*;$', '')
      if hist == '' then redis.call('HDEL', KEYS[5], it.key) else redis.call('HSET', KEYS[5], it.key, hist) end
    end
    if force then
      deadLetter(it.key, it.elem, force, ttl)
      dead = dead + 1
    elseif countDeliveries(hist) >= maxDeliveries then
      deadLetter(it.key, it.elem, 'max-deliveries', ttl)
      dead = dead + 1
    else
      redis.call('LPUSH', KEYS[1], withId(it.elem, it.id))
      back = back + 1
    end
  end
  if back > 0 then
    redis.call('HINCRBY', KEYS[2], 'consumed', -back)
    touch(KEYS[1], keepAtLeast(KEYS[2], ttl))
    if redis.call('HDEL', KEYS[2], 'w') == 1 then redis.call('PUBLISH', wake, 'm') end
  end
  if dead > 0 and redis.call('HDEL', KEYS[8], 'w') == 1 then redis.call('PUBLISH', dlwake, 'm') end
  return back, dead
end
