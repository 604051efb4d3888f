-- Implicit id of the element at the head of list `list` whose info hash is `info` (lib/queue/element.ts).
local function headId(list, info)
  return tonumber(redis.call('HGET', info, 'seq') or 0) - redis.call('LLEN', list) + 1
end
