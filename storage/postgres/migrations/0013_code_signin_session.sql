-- The first-party session a user was signed in with when an authorization code was
-- issued: the token endpoint refuses the code once that session has ended (logout,
-- revocation, password reset). Empty for codes issued before this column existed.
ALTER TABLE eco_oauth_codes ADD COLUMN signin_session text NOT NULL DEFAULT '';
