-- usage: the detailed request log, the exact per-period call counter, the daily rollup.

-- One row per tracked request. id is the record's EcoID (eco_use_…): a batch written twice
-- stores its rows once (INSERT … ON CONFLICT (id) DO NOTHING).
CREATE TABLE eco_api_usage (
    id         text        PRIMARY KEY,
    key_id     text        NOT NULL DEFAULT '',
    user_id    text        NOT NULL,
    endpoint   text        NOT NULL CHECK (octet_length(endpoint) BETWEEN 1 AND 256),
    method     text        NOT NULL CHECK (octet_length(method) BETWEEN 1 AND 16),
    status     smallint    NOT NULL CHECK (status BETWEEN 100 AND 999),
    latency_us bigint      NOT NULL CHECK (latency_us >= 0),
    bytes      bigint      NOT NULL CHECK (bytes >= 0),
    created_at timestamptz NOT NULL
);
CREATE INDEX eco_api_usage_user_time ON eco_api_usage (user_id, created_at);
CREATE INDEX eco_api_usage_time ON eco_api_usage (created_at);

-- The exact monthly call counter that quotas read and write; period_start is the first
-- day of the calendar month (UTC).
CREATE TABLE eco_usage_records (
    user_id      text        NOT NULL,
    period_start date        NOT NULL,
    calls        bigint      NOT NULL DEFAULT 0 CHECK (calls >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, period_start)
);

-- Calls per user and UTC day, recomputed from eco_api_usage by Aggregate (idempotent).
CREATE TABLE eco_usage_daily (
    user_id       text        NOT NULL,
    day           date        NOT NULL,
    calls         bigint      NOT NULL CHECK (calls >= 0),
    errors        bigint      NOT NULL CHECK (errors >= 0),
    aggregated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, day)
);
CREATE INDEX eco_usage_daily_day ON eco_usage_daily (day);
