-- auth.AttemptLimit.Reserve in Redis: one step on the hash KEYS[1] {c = count, s = window
-- start}, times in Unix microseconds. ARGV: now, window, max. A window is closed when
-- now >= s + window. Returns {ok (1|0), count, s}. A granted step (re)sets the key's TTL
-- to the window's end, so Redis forgets closed windows by itself.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local st = redis.call('HMGET', KEYS[1], 'c', 's')
local c = tonumber(st[1]) or 0
local s = tonumber(st[2])
local ok = 0
if s == nil or now >= s + window then
  c, s, ok = 1, now, 1
elseif c < max then
  c, ok = c + 1, 1
end
if ok == 1 then
  redis.call('HSET', KEYS[1], 'c', c, 's', string.format('%d', s))
  redis.call('PEXPIRE', KEYS[1], math.ceil((s + window - now) / 1000) + 1000)
end
return {ok, c, string.format('%d', s)}
