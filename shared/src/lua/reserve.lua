-- Holds an amount against a counter if it fits under the caps (atomic: one script).
-- KEYS[1]: the counter (a hash: cost, held_cost, tokens, held_tokens)
-- ARGV: cap_cost, want_cost, cap_tokens, want_tokens (a negative cap is no cap), ttl_seconds
-- Returns {verdict, cost, held_cost, tokens, held_tokens}: verdict 1 held, 0 over the cost
-- cap, 2 over the token cap; the figures are after holding (or as found, when refused).
local h = redis.call('HMGET', KEYS[1], 'cost', 'held_cost', 'tokens', 'held_tokens')
local cost = tonumber(h[1] or '0')
local held_cost = tonumber(h[2] or '0')
local tokens = tonumber(h[3] or '0')
local held_tokens = tonumber(h[4] or '0')
local cap_cost = tonumber(ARGV[1])
local want_cost = tonumber(ARGV[2])
local cap_tokens = tonumber(ARGV[3])
local want_tokens = tonumber(ARGV[4])
if cap_cost >= 0 and cost + held_cost + want_cost > cap_cost then
  return {0, cost, held_cost, tokens, held_tokens}
end
if cap_tokens >= 0 and tokens + held_tokens + want_tokens > cap_tokens then
  return {2, cost, held_cost, tokens, held_tokens}
end
held_cost = redis.call('HINCRBY', KEYS[1], 'held_cost', want_cost)
held_tokens = redis.call('HINCRBY', KEYS[1], 'held_tokens', want_tokens)
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, cost, held_cost, tokens, held_tokens}
