-- Holds an amount against a counter if it fits under the caps (atomic: one script).
-- ARGV: hold id, cap_cost, want_cost, cap_tokens, want_tokens (a negative cap is no cap),
--       ttl_seconds (of the counter), lease_ms (of the hold)
-- Returns {verdict, cost, held_cost, tokens, held_tokens}: verdict 1 held, 0 over the cost
-- cap, 2 over the token cap; the figures are after holding (or as found, when refused).
-- Holding an id that is already held changes nothing and answers 1 (a retried call).
local id = ARGV[1]
local now = now_ms()
drop_expired(now)
local h = redis.call('HMGET', KEYS[1], 'cost', 'held_cost', 'tokens', 'held_tokens', 'c:' .. id)
local cost = tonumber(h[1] or '0')
local held_cost = tonumber(h[2] or '0')
local tokens = tonumber(h[3] or '0')
local held_tokens = tonumber(h[4] or '0')
if h[5] then
  return {1, cost, held_cost, tokens, held_tokens}
end
local cap_cost = tonumber(ARGV[2])
local want_cost = tonumber(ARGV[3])
local cap_tokens = tonumber(ARGV[4])
local want_tokens = tonumber(ARGV[5])
if cap_cost >= 0 and cost + held_cost + want_cost > cap_cost then
  return {0, cost, held_cost, tokens, held_tokens}
end
if cap_tokens >= 0 and tokens + held_tokens + want_tokens > cap_tokens then
  return {2, cost, held_cost, tokens, held_tokens}
end
held_cost = redis.call('HINCRBY', KEYS[1], 'held_cost', ARGV[3])
held_tokens = redis.call('HINCRBY', KEYS[1], 'held_tokens', ARGV[5])
redis.call('HSET', KEYS[1], 'c:' .. id, ARGV[3], 't:' .. id, ARGV[5])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), id)
keep_for(ARGV[6])
return {1, cost, held_cost, tokens, held_tokens}
