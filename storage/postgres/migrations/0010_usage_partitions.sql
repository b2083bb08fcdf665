-- usage at scale: the request log partitioned by month, and a daily rollup detailed enough
-- to answer history and per-endpoint analytics of closed days without the log.

-- eco_api_usage becomes a table partitioned by calendar month (UTC) of created_at, with one
-- partition per month named eco_api_usage_pYYYYMM and a default partition for rows of a
-- month without one yet (UsageStore.Maintain moves them into their month's partition). A
-- primary key of a partitioned table must hold the partition key: (id, created_at). A
-- record keeps its ID and time across retries, so a batch sent twice still stores its rows
-- once. The rows of the old table are kept.
ALTER TABLE eco_api_usage RENAME TO eco_api_usage_unpartitioned;
ALTER INDEX eco_api_usage_pkey RENAME TO eco_api_usage_unpartitioned_pkey;
ALTER INDEX eco_api_usage_user_time RENAME TO eco_api_usage_unpartitioned_user_time;
ALTER INDEX eco_api_usage_time RENAME TO eco_api_usage_unpartitioned_time;

CREATE TABLE eco_api_usage (
    id         text        NOT NULL,
    key_id     text        NOT NULL DEFAULT '',
    user_id    text        NOT NULL,
    endpoint   text        NOT NULL CHECK (octet_length(endpoint) BETWEEN 1 AND 256),
    method     text        NOT NULL CHECK (octet_length(method) BETWEEN 1 AND 16),
    status     smallint    NOT NULL CHECK (status BETWEEN 100 AND 999),
    latency_us bigint      NOT NULL CHECK (latency_us >= 0),
    bytes      bigint      NOT NULL CHECK (bytes >= 0),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX eco_api_usage_user_time ON eco_api_usage (user_id, created_at);
CREATE INDEX eco_api_usage_time ON eco_api_usage (created_at);
CREATE TABLE eco_api_usage_default PARTITION OF eco_api_usage DEFAULT;

-- One partition for every month the old rows cover and for this month and the next two.
DO $$
DECLARE
    m timestamp;
BEGIN
    FOR m IN
        SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') FROM eco_api_usage_unpartitioned
        UNION
        SELECT date_trunc('month', now() AT TIME ZONE 'UTC') + k * interval '1 month' FROM generate_series(0, 2) AS k
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF eco_api_usage FOR VALUES FROM (%L) TO (%L)',
            'eco_api_usage_p' || to_char(m, 'YYYYMM'),
            to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;
END
$$;

INSERT INTO eco_api_usage (id, key_id, user_id, endpoint, method, status, latency_us, bytes, created_at)
SELECT id, key_id, user_id, endpoint, method, status, latency_us, bytes, created_at FROM eco_api_usage_unpartitioned;
DROP TABLE eco_api_usage_unpartitioned;

-- Per user, UTC day, method and endpoint: what per-endpoint analytics need for a closed day.
-- latency_buckets/latency_counts are a sparse log-linear histogram of latency_us (bucket
-- numbers as width_bucket over the bounds the Go code passes, 16 buckets per power of two).
CREATE TABLE eco_usage_daily_endpoints (
    user_id         text     NOT NULL,
    day             date     NOT NULL,
    method          text     NOT NULL,
    endpoint        text     NOT NULL,
    calls           bigint   NOT NULL CHECK (calls >= 0),
    errors          bigint   NOT NULL CHECK (errors >= 0),
    latency_sum_us  bigint   NOT NULL CHECK (latency_sum_us >= 0),
    latency_buckets integer[] NOT NULL,
    latency_counts  bigint[]  NOT NULL,
    PRIMARY KEY (user_id, day, method, endpoint)
);
CREATE INDEX eco_usage_daily_endpoints_day ON eco_usage_daily_endpoints (day);

-- The days whose rollup is complete: Aggregate records a day here once it has closed, and
-- a late record for the day removes it, so readers use the rollup only for days it holds.
CREATE TABLE eco_usage_rollup_days (
    day           date        PRIMARY KEY,
    aggregated_at timestamptz NOT NULL DEFAULT now()
);

-- How far back the log is kept: Maintain raises kept_from when it drops a month's partition
-- for retention. Aggregate leaves the rollup of a day before it as it is.
CREATE TABLE eco_usage_log_horizon (
    only_row  boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    kept_from timestamptz NOT NULL
);
