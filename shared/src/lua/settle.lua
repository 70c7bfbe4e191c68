-- Turns a hold into what was used (atomic: one script); a release uses nothing.
-- ARGV: hold id, used_cost, used_tokens, ttl_seconds
-- Returns {cost, tokens} after settling. A hold that is gone (settled already, or its lease
-- ran out and a later call dropped it) takes nothing out of the sums, so settling twice or
-- late never frees room another request holds; what was used is added either way.
drop_expired(now_ms())
drop_hold(ARGV[1])
local cost = redis.call('HINCRBY', KEYS[1], 'cost', ARGV[2])
local tokens = redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[3])
keep_for(ARGV[4])
return {cost, tokens}
