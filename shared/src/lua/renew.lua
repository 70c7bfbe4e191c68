-- Extends a hold's lease (a request still running); atomic: one script.
-- ARGV: hold id, lease_ms
-- Returns 1 when renewed, 0 when the hold is gone (its lease ran out first).
local now = now_ms()
drop_expired(now)
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
