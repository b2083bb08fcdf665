-- Billing: one subscription row per user, the Stripe events already processed, and the
-- overage ledger (one charge per subscription and billing period).

CREATE TABLE eco_subscriptions (
    id                        text        PRIMARY KEY,          -- eco_sub_…
    user_id                   text        NOT NULL UNIQUE,      -- eco_usr_…
    email                     text        NOT NULL DEFAULT '',
    plan                      text        NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
    status                    text        NOT NULL,
    stripe_customer_id        text        UNIQUE,               -- NULL until created
    stripe_subscription_id    text,                             -- NULL on the local Free plan
    cancel_at_period_end      boolean     NOT NULL DEFAULT false,
    current_period_start      timestamptz,
    current_period_end        timestamptz,
    custom_quota_calls        bigint      NOT NULL DEFAULT 0,   -- Enterprise terms
    custom_hard_cap           boolean     NOT NULL DEFAULT false,
    custom_price_cents        bigint      NOT NULL DEFAULT 0,
    custom_overage_millicents bigint      NOT NULL DEFAULT 0,
    state_at                  timestamptz,                      -- newest Stripe event applied
    created_at                timestamptz NOT NULL,
    updated_at                timestamptz NOT NULL
);
CREATE INDEX eco_subscriptions_plan_idx ON eco_subscriptions (plan, created_at, id);
CREATE INDEX eco_subscriptions_created_idx ON eco_subscriptions (created_at, id);

CREATE TABLE eco_stripe_events (
    id           text        PRIMARY KEY,                       -- Stripe's evt_…
    type         text        NOT NULL,
    created_at   timestamptz NOT NULL,                          -- Stripe's creation time
    processed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE eco_overage_charges (
    subscription_id text        NOT NULL REFERENCES eco_subscriptions (id) ON DELETE CASCADE,
    user_id         text        NOT NULL,
    period          date        NOT NULL,                       -- first day of the month (UTC)
    calls           bigint      NOT NULL CHECK (calls >= 0),
    calls_over      bigint      NOT NULL CHECK (calls_over >= 0),
    amount_cents    bigint      NOT NULL CHECK (amount_cents >= 0),
    invoice_item_id text,                                       -- NULL while pending
    claimed_at      timestamptz NOT NULL,
    charged_at      timestamptz,
    PRIMARY KEY (subscription_id, period)
);
