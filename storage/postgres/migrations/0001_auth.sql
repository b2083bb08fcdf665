-- auth: identities, credentials and profiles kept apart; sessions with hashed refresh
-- tokens; project access grants; the activity log.

CREATE TABLE eco_identities (
    id         text PRIMARY KEY,
    email      text NOT NULL,
    created_at timestamptz NOT NULL
);
-- Emails are stored normalised; the index on lower(email) makes the uniqueness hold even
-- for a writer that forgot to normalise.
CREATE UNIQUE INDEX eco_identities_email_key ON eco_identities (lower(email));

CREATE TABLE eco_credentials (
    user_id       text PRIMARY KEY REFERENCES eco_identities (id) ON DELETE CASCADE,
    password_hash text NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE eco_profiles (
    user_id    text PRIMARY KEY REFERENCES eco_identities (id) ON DELETE CASCADE,
    full_name  text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL
);

CREATE TABLE eco_sessions (
    id           text PRIMARY KEY,
    user_id      text NOT NULL REFERENCES eco_identities (id) ON DELETE CASCADE,
    refresh_hash bytea NOT NULL,
    prev_hash    bytea,
    created_at   timestamptz NOT NULL,
    rotated_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    ip           text NOT NULL DEFAULT '',
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX eco_sessions_user_idx ON eco_sessions (user_id);

CREATE TABLE eco_project_access (
    project_id text NOT NULL,
    user_id    text NOT NULL REFERENCES eco_identities (id) ON DELETE CASCADE,
    role       text NOT NULL,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX eco_project_access_user_idx ON eco_project_access (user_id);

-- No foreign key on user_id: the log outlives accounts and records unknown emails.
CREATE TABLE eco_activity_log (
    id         text PRIMARY KEY,
    user_id    text,
    email      text NOT NULL DEFAULT '',
    action     text NOT NULL,
    success    boolean NOT NULL,
    detail     text NOT NULL DEFAULT '',
    ip         text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL
);
CREATE INDEX eco_activity_log_user_idx ON eco_activity_log (user_id, created_at DESC, id DESC);
