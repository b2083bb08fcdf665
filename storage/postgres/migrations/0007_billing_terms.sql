-- Billing terms history: under which terms each subscription was from effective_at until
-- its next row, so the overage cron charges a closed period by the terms in force during
-- it (a subscription deleted or changed before the cron ran is still billed for it).
-- Rows are appended by the billing store in the transaction that changes the
-- subscription; a subscription with no row yet (written before this migration) counts as
-- its current state since its created_at.

CREATE TABLE eco_subscription_terms (
    seq                    bigserial   PRIMARY KEY,                 -- write order
    subscription_id        text        NOT NULL REFERENCES eco_subscriptions (id) ON DELETE CASCADE,
    user_id                text        NOT NULL,
    effective_at           timestamptz NOT NULL,
    plan                   text        NOT NULL,                    -- the effective plan
    quota_calls            bigint      NOT NULL,
    hard_cap               boolean     NOT NULL,
    price_cents            bigint      NOT NULL,
    overage_millicents     bigint      NOT NULL,
    stripe_customer_id     text,
    stripe_subscription_id text
);
CREATE INDEX eco_subscription_terms_sub_idx ON eco_subscription_terms (subscription_id, effective_at, seq);
CREATE INDEX eco_subscription_terms_at_idx ON eco_subscription_terms (effective_at);
