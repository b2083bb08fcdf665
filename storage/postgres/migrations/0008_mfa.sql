-- mfa: TOTP two-factor authentication. The secret is stored only encrypted (by the auth
-- Service, AES-256-GCM); recovery codes and mfa tokens only as SHA-256 hashes. Everything
-- goes with the identity (ON DELETE CASCADE).

CREATE TABLE eco_mfa_totp (
    user_id        text PRIMARY KEY REFERENCES eco_identities (id) ON DELETE CASCADE,
    secret_sealed  bytea NOT NULL,
    created_at     timestamptz NOT NULL,
    enabled_at     timestamptz,                 -- NULL while enrollment is pending
    last_step      bigint NOT NULL DEFAULT -1   -- last accepted TOTP time step (replay guard)
);

CREATE TABLE eco_mfa_recovery_codes (
    user_id   text NOT NULL REFERENCES eco_identities (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE eco_mfa_challenges (
    token_hash bytea PRIMARY KEY,
    user_id    text NOT NULL REFERENCES eco_identities (id) ON DELETE CASCADE,
    ip         text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT '',
    attempts   integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX eco_mfa_challenges_user_idx ON eco_mfa_challenges (user_id, expires_at);
