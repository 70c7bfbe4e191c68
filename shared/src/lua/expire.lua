-- Shared head of the counter scripts (prepended to reserve, settle and renew).
-- KEYS[1]: the counter, a hash: cost, tokens (settled), held_cost, held_tokens (the sums of the
--          holds), and per hold `c:<id>` and `t:<id>` (what that hold holds)
-- KEYS[2]: the leases, a sorted set: hold id -> deadline (Redis clock, milliseconds)
-- Amounts travel as the decimal strings the caller sent, never through Lua's number formatting
-- (which would write large numbers as 1e+15, and zero negated as -0, both refused by HINCRBY).

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function negated(s)
  if s == '0' then return '0' end
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end

-- Takes hold `id` out of the sums; false when there is no such hold (settled, or expired).
local function drop_hold(id)
  local amounts = redis.call('HMGET', KEYS[1], 'c:' .. id, 't:' .. id)
  redis.call('ZREM', KEYS[2], id)
  if not amounts[1] then return false end
  local held_cost = redis.call('HINCRBY', KEYS[1], 'held_cost', negated(amounts[1]))
  if held_cost < 0 then redis.call('HSET', KEYS[1], 'held_cost', 0) end
  local held_tokens = redis.call('HINCRBY', KEYS[1], 'held_tokens', negated(amounts[2] or '0'))
  if held_tokens < 0 then redis.call('HSET', KEYS[1], 'held_tokens', 0) end
  redis.call('HDEL', KEYS[1], 'c:' .. id, 't:' .. id)
  return true
end

-- Drops holds whose lease ran out (a replica that died, or a reply lost after the hold was
-- made), at most 100 per call so one call stays short; the next call drops the rest.
local function drop_expired(now)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(expired) do drop_hold(id) end
end

local function keep_for(ttl_seconds)
  redis.call('EXPIRE', KEYS[1], ttl_seconds)
  redis.call('EXPIRE', KEYS[2], ttl_seconds)
end
