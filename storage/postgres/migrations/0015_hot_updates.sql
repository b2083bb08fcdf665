-- Every token take and every Allow rewrites its row's tat_us. While tat_us was indexed
-- (eco_rate_limits_tat, for Sweep), no such update could be heap-only: each one added an
-- entry to both indexes and left a dead row behind, so under load the table and its
-- indexes grew by a row per take until a vacuum came, and every lookup walked the dead
-- entries (bench/e2e's 1,000-key run fell from 12k to 5k requests a second over a few
-- minutes on a server whose autovacuum was off). Without that index, and with room left
-- on each page, the updates are heap-only: a row's old versions are pruned from its page
-- as it is read, with or without vacuum. Sweep, run now and then, scans the table, which
-- holds one row per recently active key.
DROP INDEX IF EXISTS eco_rate_limits_tat;
ALTER TABLE eco_rate_limits SET (fillfactor = 50);

-- The other rows the API-key route updates keep room on their pages for heap-only
-- updates too: a key's last_used_at (marked at most once a minute per key and instance)
-- and a user's quota counter of the month (every quota lease). Without room, two of
-- three updates of eco_api_keys under that run were not heap-only. A fill factor applies
-- to pages written from now on; existing pages keep theirs until rewritten.
ALTER TABLE eco_api_keys SET (fillfactor = 70);
ALTER TABLE eco_usage_records SET (fillfactor = 50);
