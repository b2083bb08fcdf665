-- accounts: email verification, one-time tokens (verification and password-reset links),
-- and an index for the activity entries that name an email without a user.

-- NULL until a link sent to the current email was used.
ALTER TABLE eco_identities ADD COLUMN email_verified_at timestamptz;

-- At most one outstanding token per user and purpose; only the SHA-256 of a token is
-- kept. Tokens go with their identity.
CREATE TABLE eco_one_time_tokens (
    user_id    text NOT NULL REFERENCES eco_identities (id) ON DELETE CASCADE,
    purpose    text NOT NULL,
    token_hash bytea NOT NULL,
    email      text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, purpose)
);
CREATE UNIQUE INDEX eco_one_time_tokens_hash_key ON eco_one_time_tokens (token_hash);

-- A user's own log includes throttled or failed attempts that name the user's email
-- without a user ID; erasure deletes them too.
CREATE INDEX eco_activity_log_email_idx ON eco_activity_log (email, created_at DESC, id DESC);
