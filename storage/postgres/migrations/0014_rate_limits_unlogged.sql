-- Rate-limit state is ephemeral: UNLOGGED, so a token take or an Allow writes no WAL and
-- its commit waits for no WAL flush. With 1,000 active keys that was the API-key route's
-- bottleneck on PostgreSQL: bench/e2e measured 17.2k requests a second logged and 25.3k
-- unlogged on the same machine. The cost: after a crash of PostgreSQL (not a clean
-- shutdown) the table is empty, and on a streaming replica it is always empty, so every
-- key starts again with its full burst, as with a Redis limiter that keeps nothing on
-- disk. Quota counts, which billing reads, stay in logged tables.
ALTER TABLE eco_rate_limits SET UNLOGGED;
