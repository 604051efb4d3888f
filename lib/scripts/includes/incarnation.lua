-- A queue's incarnation: field n of its info hash, a new id each time the queue is created, so that a
-- stream bound to one incarnation can tell "deleted (and maybe created again)" from "empty".
-- N is field n as the caller read it (false when missing: callers read it with the fields they need
-- anyway, so checking costs no command). With EXPECTED = '' (a caller not bound yet): the queue's
-- incarnation, created when it has none. Otherwise: EXPECTED when the queue still is that incarnation,
-- else nil (it was deleted).
local function incarnation(info, n, expected)
  if expected ~= '' then
    if n == expected then return n end
    return nil
  end
  if n then return n end
  -- Server time in µs: a queue's next incarnation is always created after its previous one.
  local t = redis.call('TIME')
  n = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('HSET', info, 'n', n)
  return n
end
