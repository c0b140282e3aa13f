-- +goose Up
-- The ledger (SPEC 3). Every money movement is a PayIn (what a customer pays, by type)
-- balanced by PayOuts (who earns it). Amounts are sats: fiat prices are converted once, when
-- the PayIn is created, at a stored rate; credits and reward_sats are custodial assets worth
-- one sat each.
-- credit_grant is credits an admin gives a customer: the tenant funds it, so it has no pay-in
-- parts (no custodial debit, no invoice) and is PAID when created.
CREATE TYPE payin_type AS ENUM ('license_purchase', 'subscription_renewal', 'tier_upgrade', 'credit_purchase', 'credit_grant');
CREATE TYPE payin_state AS ENUM ('PENDING_INVOICE_CREATION', 'PENDING', 'PAID', 'FAILED');
CREATE TYPE payin_failure_reason AS ENUM (
    'INVOICE_CREATION_FAILED', 'INVOICE_EXPIRED', 'INVOICE_INVALID', 'USER_CANCELLED',
    'SYSTEM_CANCELLED', 'AMOUNT_MISMATCH', 'EXECUTION_FAILED');
-- credit_grant pays a credit_grant PayIn out to its customer, in credits.
CREATE TYPE payout_type AS ENUM ('tenant_revenue', 'referral_reward', 'overpay_spillover', 'credit_purchase', 'credit_grant');

CREATE TABLE payins (
    tenant_id          uuid                 NOT NULL,
    id                 uuid                 NOT NULL,
    customer_id        uuid                 NOT NULL,
    type               payin_type           NOT NULL,
    state              payin_state          NOT NULL,
    failure_reason     payin_failure_reason,
    -- The price as listed, and its conversion to sats (no rate for SAT prices).
    price_currency     currency             NOT NULL,
    price_value        bigint               NOT NULL CHECK (price_value >= 0),
    rate_minor_per_btc bigint               CHECK (rate_minor_per_btc > 0),
    rate_source        text,
    cost_sats          bigint               NOT NULL CHECK (cost_sats >= 0),
    -- What the PayIn buys: a policy with add-ons (licence purchase), or credits.
    policy_id          uuid,
    addon_ids          uuid[]               NOT NULL DEFAULT '{}',
    -- What it produced, once PAID.
    license_id         uuid,
    -- Retries: each retry of a FAILED PayIn is a new PayIn; genesis_id is the first of the
    -- chain, successor_id the retry that replaced this one (at most one).
    genesis_id         uuid                 NOT NULL,
    successor_id       uuid,
    retry_count        integer              NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    state_changed_at   timestamptz          NOT NULL,
    created_at         timestamptz          NOT NULL,
    updated_at         timestamptz          NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, policy_id) REFERENCES policies (tenant_id, id),
    FOREIGN KEY (tenant_id, license_id) REFERENCES licenses (tenant_id, id),
    CONSTRAINT payins_successor_key UNIQUE (tenant_id, successor_id),
    -- Deferred: a retry claims its predecessor (PayInRetryClaim) before inserting itself.
    CONSTRAINT payins_successor_fkey FOREIGN KEY (tenant_id, successor_id) REFERENCES payins (tenant_id, id)
        DEFERRABLE INITIALLY DEFERRED,
    -- Only a FAILED PayIn is retried.
    CONSTRAINT payins_successor_check CHECK (successor_id IS NULL OR state = 'FAILED'),
    CONSTRAINT payins_rate_check CHECK ((price_currency = 'SAT') = (rate_minor_per_btc IS NULL)),
    CONSTRAINT payins_failure_check CHECK ((state = 'FAILED') = (failure_reason IS NOT NULL))
);

-- PayInList by customer, newest first; statistics per customer.
CREATE INDEX payins_customer_idx ON payins (tenant_id, customer_id, id);
-- PayInGetAnyTenant: the buyer polls a PayIn by its id alone.
CREATE UNIQUE INDEX payins_id_key ON payins (id);
-- The reconcile sweep: PENDING PayIns across tenants by age.
CREATE INDEX payins_pending_idx ON payins (state_changed_at) WHERE state = 'PENDING';
-- PayInStatisticsSpent, for the tenant: PayIns PAID in a time range (PAID is final, so
-- state_changed_at is when it was paid).
CREATE INDEX payins_paid_idx ON payins (tenant_id, state_changed_at) WHERE state = 'PAID';
-- PayInStatisticsSpent, for one customer.
CREATE INDEX payins_customer_paid_idx ON payins (tenant_id, customer_id, state_changed_at) WHERE state = 'PAID';

-- payin_transitions: every state change of a PayIn, with its time.
CREATE TABLE payin_transitions (
    tenant_id  uuid                 NOT NULL,
    payin_id   uuid                 NOT NULL,
    seq        bigint               GENERATED ALWAYS AS IDENTITY,
    from_state payin_state,
    to_state   payin_state          NOT NULL,
    reason     payin_failure_reason,
    at         timestamptz          NOT NULL,
    PRIMARY KEY (tenant_id, payin_id, seq),
    FOREIGN KEY (tenant_id, payin_id) REFERENCES payins (tenant_id, id)
);

-- payin_custodial_parts: what a PayIn took from the payer's balances, with the balance after.
CREATE TABLE payin_custodial_parts (
    tenant_id     uuid   NOT NULL,
    payin_id      uuid   NOT NULL,
    asset         asset  NOT NULL,
    amount        bigint NOT NULL CHECK (amount > 0),
    balance_after bigint NOT NULL CHECK (balance_after >= 0),
    PRIMARY KEY (tenant_id, payin_id, asset),
    FOREIGN KEY (tenant_id, payin_id) REFERENCES payins (tenant_id, id)
);

-- payin_invoices: the provider invoice paying the rest of a PayIn.
CREATE TABLE payin_invoices (
    tenant_id           uuid        NOT NULL,
    payin_id            uuid        NOT NULL,
    provider            text        NOT NULL,
    provider_invoice_id text        NOT NULL,
    checkout_url        text        NOT NULL,
    amount_sats         bigint      NOT NULL CHECK (amount_sats > 0),
    paid_sats           bigint      CHECK (paid_sats >= 0),
    expires_at          timestamptz,
    created_at          timestamptz NOT NULL,
    settled_at          timestamptz,
    cancelled_at        timestamptz,
    PRIMARY KEY (tenant_id, payin_id),
    FOREIGN KEY (tenant_id, payin_id) REFERENCES payins (tenant_id, id)
);

-- Webhooks find their PayIn by the provider's invoice id.
CREATE UNIQUE INDEX payin_invoices_provider_key ON payin_invoices (provider, provider_invoice_id);

-- payouts: who earned what from a PayIn. earner_customer_id is NULL for the tenant itself.
CREATE TABLE payouts (
    tenant_id          uuid        NOT NULL,
    id                 uuid        NOT NULL,
    payin_id           uuid        NOT NULL,
    type               payout_type NOT NULL,
    earner_customer_id uuid,
    asset              text        NOT NULL CHECK (asset IN ('sats', 'credits', 'reward_sats')),
    amount             bigint      NOT NULL CHECK (amount > 0),
    balance_after      bigint      CHECK (balance_after >= 0),
    created_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, payin_id) REFERENCES payins (tenant_id, id),
    FOREIGN KEY (tenant_id, earner_customer_id) REFERENCES customers (tenant_id, id)
);

CREATE INDEX payouts_payin_idx ON payouts (tenant_id, payin_id);
-- PayInStatisticsEarned, for the tenant: payouts made in a time range.
CREATE INDEX payouts_created_idx ON payouts (tenant_id, created_at);
-- PayInStatisticsEarned, for one customer: what they earned in a time range (and the earner
-- foreign key).
CREATE INDEX payouts_earner_idx ON payouts (tenant_id, earner_customer_id, created_at) WHERE earner_customer_id IS NOT NULL;

-- payin_refunds: custodial debits (and any sats received) given back when a PayIn fails.
CREATE TABLE payin_refunds (
    tenant_id     uuid        NOT NULL,
    payin_id      uuid        NOT NULL,
    asset         asset       NOT NULL,
    amount        bigint      NOT NULL CHECK (amount > 0),
    balance_after bigint      NOT NULL CHECK (balance_after >= 0),
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, payin_id, asset),
    FOREIGN KEY (tenant_id, payin_id) REFERENCES payins (tenant_id, id)
);

-- provider_webhook_deliveries: the inbox of provider webhooks, one row per delivery; a
-- redelivery of the same delivery finds its row and is not processed again.
CREATE TABLE provider_webhook_deliveries (
    provider    text        NOT NULL,
    delivery_id text        NOT NULL CHECK (length(delivery_id) BETWEEN 1 AND 200),
    type        text        NOT NULL,
    invoice_id  text        NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (provider, delivery_id)
);

-- +goose Down
DROP TABLE provider_webhook_deliveries;
DROP TABLE payin_refunds;
DROP TABLE payouts;
DROP TABLE payin_invoices;
DROP TABLE payin_custodial_parts;
DROP TABLE payin_transitions;
DROP TABLE payins;
DROP TYPE payout_type;
DROP TYPE payin_failure_reason;
DROP TYPE payin_state;
DROP TYPE payin_type;
