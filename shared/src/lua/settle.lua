-- Turns a hold into what was used (atomic: one script); a release uses nothing.
-- KEYS[1]: the counter (a hash: cost, held_cost, tokens, held_tokens)
-- ARGV: minus held_cost, minus held_tokens (negated by the caller: Lua would write -0 as
-- "-0", which HINCRBY refuses), used_cost, used_tokens, ttl_seconds
-- Returns {cost, tokens} after settling. A hold is never released below zero (the counter may
-- have expired and started again while the request ran).
local held_cost = redis.call('HINCRBY', KEYS[1], 'held_cost', ARGV[1])
if held_cost < 0 then redis.call('HSET', KEYS[1], 'held_cost', 0) end
local held_tokens = redis.call('HINCRBY', KEYS[1], 'held_tokens', ARGV[2])
if held_tokens < 0 then redis.call('HSET', KEYS[1], 'held_tokens', 0) end
local cost = redis.call('HINCRBY', KEYS[1], 'cost', ARGV[3])
local tokens = redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {cost, tokens}
