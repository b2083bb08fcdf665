-- Ecosystem projects registered as OpenID Connect clients (sso.Project), and the
-- authorization codes of the code flow. Only hashes of client secrets and codes are kept.
CREATE TABLE eco_projects (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    redirect_uris text[] NOT NULL,
    secret_hash   bytea NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE eco_oauth_codes (
    hash         bytea PRIMARY KEY,
    project_id   text NOT NULL REFERENCES eco_projects (id) ON DELETE CASCADE,
    user_id      text NOT NULL REFERENCES eco_identities (id) ON DELETE CASCADE,
    redirect_uri text NOT NULL,
    challenge    text NOT NULL,
    nonce        text NOT NULL DEFAULT '',
    scope        text NOT NULL DEFAULT '',
    auth_time    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    session_id   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL
);
CREATE INDEX eco_oauth_codes_expires_idx ON eco_oauth_codes (expires_at);

-- Sessions opened by a code exchange, bound to their project: a refresh token is honoured
-- at the token endpoint only for the project it was issued to.
CREATE TABLE eco_oauth_sessions (
    session_id text PRIMARY KEY REFERENCES eco_sessions (id) ON DELETE CASCADE,
    project_id text NOT NULL REFERENCES eco_projects (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL
);
