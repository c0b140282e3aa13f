-- +goose Up
-- subscriptions: a customer's recurring purchase of a policy, tied to its licence. The
-- price and period are a snapshot taken at creation: a policy's price change applies to new
-- purchases only.
CREATE TYPE subscription_status AS ENUM ('active', 'past_due', 'lapsed', 'cancelled');

CREATE TABLE subscriptions (
    tenant_id               uuid                NOT NULL,
    id                      uuid                NOT NULL,
    customer_id             uuid                NOT NULL,
    license_id              uuid                NOT NULL,
    policy_id               uuid                NOT NULL,
    status                  subscription_status NOT NULL DEFAULT 'active',
    price_currency          currency            NOT NULL,
    price_value             bigint              NOT NULL CHECK (price_value >= 0),
    period_days             integer             NOT NULL CHECK (period_days BETWEEN 1 AND 3660),
    current_period_start    timestamptz         NOT NULL,
    current_period_end      timestamptz         NOT NULL,
    next_renewal_at         timestamptz,
    consecutive_failures    integer             NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    last_renewal_attempt_at timestamptz,
    created_at              timestamptz         NOT NULL,
    cancelled_at            timestamptz,
    status_changed_at       timestamptz         NOT NULL,
    updated_at              timestamptz         NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, license_id) REFERENCES licenses (tenant_id, id),
    FOREIGN KEY (tenant_id, policy_id) REFERENCES policies (tenant_id, id),
    CONSTRAINT subscriptions_period_check CHECK (current_period_end > current_period_start),
    CONSTRAINT subscriptions_cancelled_check CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
);

-- One live subscription per licence; LicenseValidate reads it by licence.
CREATE UNIQUE INDEX subscriptions_license_key ON subscriptions (tenant_id, license_id);
-- SubscriptionList by customer.
CREATE INDEX subscriptions_customer_idx ON subscriptions (tenant_id, customer_id, id);

-- subscription_addons: the add-ons a subscription was bought with.
CREATE TABLE subscription_addons (
    tenant_id       uuid NOT NULL,
    subscription_id uuid NOT NULL,
    addon_id        uuid NOT NULL,
    PRIMARY KEY (tenant_id, subscription_id, addon_id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
    FOREIGN KEY (tenant_id, addon_id) REFERENCES addons (tenant_id, id)
);

-- +goose Down
DROP TABLE subscription_addons;
DROP TABLE subscriptions;
DROP TYPE subscription_status;
