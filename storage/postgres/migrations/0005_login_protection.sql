-- Account-protection counters (auth.ThrottleStore): the login throttle, shared by every
-- instance; and emails in Unicode NFC, the form auth.NormalizeEmail now gives.

CREATE TABLE eco_throttle (
    key_hash bytea   PRIMARY KEY,  -- SHA-256 of the counter's key: no emails or addresses here
    count    integer NOT NULL,     -- attempts in the window, those in flight included
    start_us bigint  NOT NULL,     -- when the window opened, Unix microseconds
    end_us   bigint  NOT NULL,     -- when it closes (for sweeping), Unix microseconds
    ok       boolean NOT NULL      -- whether the latest reservation was granted
);
CREATE INDEX eco_throttle_end_idx ON eco_throttle (end_us);

-- Emails stored before normalisation: bring them to NFC unless another account already
-- holds the NFC form (that pair is left for the operator to merge). normalize() needs a
-- UTF-8 database; any other encoding cannot hold such addresses anyway.
DO $$
BEGIN
    IF current_setting('server_encoding') = 'UTF8' THEN
        UPDATE eco_identities i SET email = normalize(i.email, NFC)
        WHERE i.email IS NOT NFC NORMALIZED
          AND NOT EXISTS (SELECT 1 FROM eco_identities j
                          WHERE j.id <> i.id AND lower(j.email) = lower(normalize(i.email, NFC)));
    END IF;
END
$$;
