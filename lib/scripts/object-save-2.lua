--[[
  Save a persisted object: set and delete fields, all or nothing, and log the change.

  KEYS[1] the object's hash: f:<field> -> encoded value, v -> version, n -> incarnation
  KEYS[2] its change log (a stream): one entry per save, id <version>-0, s:<field> -> value for each
          field set, d:<field> -> '' for each field deleted; capped at ARGV[3] entries
  ARGV[1] ttl in ms: both keys expire this long after the save unless kept alive
  ARGV[2] ifVersion: save only if the object is at this version now (0: only if it does not exist);
          '' = unconditionally
  ARGV[3] length of the change log   ARGV[4] pub/sub channel of change streams ('m' after a save)
  ARGV[5] S, the number of fields set   ARGV[6 .. 5 + 2S] field, value pairs
  ARGV[6 + 2S ..] fields deleted
  (at most 2000 fields set and deleted in all: the log entry is one XADD, and Lua's unpack has a limit)

  A save that changes nothing (and one that only deletes fields of an object that does not exist)
  writes nothing. An object that does not exist is created at version 1 with a new incarnation (and an
  empty change log).
  Returns { 1, version, incarnation } when saved, { 0, version, incarnation } when there was nothing
  to save, { -1, version, incarnation } when ifVersion did not match (nothing is written); a missing
  object is version 0 with incarnation ''.
]]
--@include chunked
local ttl = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'v', 'n')
local version = tonumber(state[1] or 0)
local inc = state[2] or ''
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= version then return { -1, version, inc } end

local sets = tonumber(ARGV[5])
local firstDeleted = 6 + 2 * sets
local deletes = #ARGV - firstDeleted + 1
if sets + deletes == 0 or (inc == '' and sets == 0) then return { 0, version, inc } end

if inc == '' then
  -- Created now: a new incarnation, so change streams of an earlier one (deleted or expired) resync.
  local t = redis.call('TIME')
  inc = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('HSET', KEYS[1], 'n', inc)
  redis.call('DEL', KEYS[2])
end

local entry = {}
if sets > 0 then
  local fields = {}
  for i = 6, 5 + 2 * sets, 2 do
    fields[#fields + 1] = 'f:' .. ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
    entry[#entry + 1] = 's:' .. ARGV[i]
    entry[#entry + 1] = ARGV[i + 1]
  end
  chunked('HSET', KEYS[1], fields, 2)
end
if deletes > 0 then
  local fields = {}
  for i = firstDeleted, #ARGV do
    fields[#fields + 1] = 'f:' .. ARGV[i]
    entry[#entry + 1] = 'd:' .. ARGV[i]
    entry[#entry + 1] = ''
  end
  chunked('HDEL', KEYS[1], fields, 1)
end
version = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '=', ARGV[3], version .. '-0', unpack(entry))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PUBLISH', ARGV[4], 'm')
return { 1, version, inc }
