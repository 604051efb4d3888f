--[[
  Read a persisted object's changes after a version (its change streams).

  KEYS[1] the object's hash (f:<field>, v version, n incarnation)   KEYS[2] its change log (a stream)
  ARGV[1] after: the last version the reader has; -1 = only tell where the object is now
  ARGV[2] most entries to return
  ARGV[3] the incarnation the reader follows ('' = none yet)

  Returns { 'c', incarnation, version, entry, entry, … }: the log entries after `after`, in order,
  each { id '<version>-0', { s:<field>, value, d:<field>, '', … } }; incarnation '' and version 0 when
  the object does not exist. Or, when the reader cannot continue from the log (the object was created
  anew, or the versions it needs were trimmed from the log): { 'r', incarnation, version, field,
  value, … }, the whole object (a resync).
]]
local state = redis.call('HMGET', KEYS[1], 'v', 'n')
local inc = state[2]
if not inc then return { 'c', '', 0 } end
local version = tonumber(state[1] or 0)
local after = tonumber(ARGV[1])
if after < 0 then return { 'c', inc, version } end

local function resync()
  local out = { 'r', inc, version }
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'f:' then
      out[#out + 1] = string.sub(all[i], 3)
      out[#out + 1] = all[i + 1]
    end
  end
  return out
end

if (ARGV[3] ~= '' and ARGV[3] ~= inc) or version < after then return resync() end
if version == after then return { 'c', inc, version } end
local entries = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', ARGV[2])
if #entries == 0 or entries[1][1] ~= (after + 1) .. '-0' then return resync() end
local out = { 'c', inc, version }
for _, e in ipairs(entries) do out[#out + 1] = e end
return out
