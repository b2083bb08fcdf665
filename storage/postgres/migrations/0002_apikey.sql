-- API keys (package apikey). Only the SHA-256 of a plain key is stored; prev_key_hash
-- keeps the replaced hash valid until prev_valid_until during a rotation's grace period.
CREATE TABLE eco_api_keys (
    id                    text PRIMARY KEY,
    owner_id              text NOT NULL,
    name                  text NOT NULL,
    scopes                text[] NOT NULL DEFAULT '{}',
    status                text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    rate_limit_per_minute integer NOT NULL CHECK (rate_limit_per_minute BETWEEN 1 AND 1000000),
    key_hash              bytea NOT NULL CHECK (length(key_hash) = 32),
    prev_key_hash         bytea CHECK (length(prev_key_hash) = 32),
    prev_valid_until      timestamptz,
    created_at            timestamptz NOT NULL,
    last_used_at          timestamptz,
    expires_at            timestamptz,
    rotated_at            timestamptz,
    revoked_at            timestamptz
);
CREATE INDEX eco_api_keys_owner ON eco_api_keys (owner_id, created_at, id);

-- Rate limiter state (GCRA, see apikey.Limit.GCRA): one row per (policy, subject), never
-- per limit value. Times are Unix microseconds. A row whose tat_us is in the past is
-- idle and may be deleted (Limiter.Sweep).
CREATE TABLE eco_rate_limits (
    policy  text NOT NULL,
    subject text NOT NULL,
    tat_us  bigint NOT NULL,
    seen_us bigint NOT NULL,
    allowed boolean NOT NULL,
    PRIMARY KEY (policy, subject)
);
CREATE INDEX eco_rate_limits_tat ON eco_rate_limits (tat_us);
