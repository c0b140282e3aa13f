-- +goose Up
-- customers: the buyers. referred_by points at another customer of the same tenant.
CREATE TABLE customers (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    id          uuid        NOT NULL,
    email       text        NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 320),
    external_id text        CHECK (length(external_id) BETWEEN 1 AND 200),
    is_active   boolean     NOT NULL DEFAULT true,
    is_verified boolean     NOT NULL DEFAULT false,
    invite_code text        NOT NULL CHECK (invite_code ~ '^[A-Za-z0-9_-]{4,64}$'),
    referred_by uuid,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, referred_by) REFERENCES customers (tenant_id, id),
    CONSTRAINT customers_not_self_referred CHECK (referred_by <> id)
);

-- CustomerGetByEmail; emails compare case-insensitively.
CREATE UNIQUE INDEX customers_email_key ON customers (tenant_id, lower(email));
CREATE UNIQUE INDEX customers_external_id_key ON customers (tenant_id, external_id) WHERE external_id IS NOT NULL;
CREATE UNIQUE INDEX customers_invite_code_key ON customers (tenant_id, invite_code);
-- A referrer's referrals (referral qualification).
CREATE INDEX customers_referred_by_idx ON customers (tenant_id, referred_by) WHERE referred_by IS NOT NULL;

-- customer_events: what customers did (registered, login, ...), with the IP hash the
-- caller computed; Tessera never sees raw IPs.
CREATE TABLE customer_events (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    type        text        NOT NULL CHECK (type ~ '^[a-z][a-z0-9_.]{0,63}$'),
    ip_hash     text        CHECK (length(ip_hash) BETWEEN 1 AND 128),
    occurred_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

-- CustomerEventList, and the referral checks on a customer's registered event and IP hashes.
CREATE INDEX customer_events_customer_idx ON customer_events (tenant_id, customer_id, type, occurred_at);

-- balances: custodial assets per customer. Never negative.
CREATE TYPE asset AS ENUM ('credits', 'reward_sats');

CREATE TABLE balances (
    tenant_id   uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    asset       asset       NOT NULL,
    amount      bigint      NOT NULL DEFAULT 0 CONSTRAINT balances_not_negative CHECK (amount >= 0),
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, asset),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

-- +goose Down
DROP TABLE balances;
DROP TYPE asset;
DROP TABLE customer_events;
DROP TABLE customers;
