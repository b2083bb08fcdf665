-- apikey.GCRA.Step in Redis: one GCRA step on the hash KEYS[1] {t = TAT, s = latest time
-- seen}, times in Unix microseconds. ARGV: interval, burst, now ("" = the server's TIME).
-- Returns {allowed (1|0), TAT, effective now}.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end
local st = redis.call('HMGET', KEYS[1], 't', 's')
local tat = tonumber(st[1]) or 0
local seen = tonumber(st[2]) or 0
if seen > now then now = seen end
local base = tat
if now > base then base = now end
local allowed = 0
if base + interval - now <= burst then
  tat = base + interval
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', string.format('%d', tat), 's', string.format('%d', now))
-- Idle once now reaches the TAT; keep one second more for clocks that disagree.
redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + 1000)
return {allowed, tat, now}
