-- +goose Up
-- Renewals (SPEC 4.1). A renewal opens the next cycle of a subscription: a
-- subscription_cycles row tied to its subscription_renewal PayIn. The subscription's current
-- period is the latest paid cycle (the first period, bought with the licence, is cycle 0 and
-- has no row); an unpaid cycle starts where the previous one ends.

-- auto_pay: the customer lets renewals take custodial balances (credits, then reward_sats)
-- before invoicing the rest. Off by default.
ALTER TABLE customers ADD COLUMN auto_pay boolean NOT NULL DEFAULT false;

CREATE TABLE subscription_cycles (
    tenant_id       uuid        NOT NULL,
    subscription_id uuid        NOT NULL,
    cycle_number    integer     NOT NULL CHECK (cycle_number >= 1),
    payin_id        uuid        NOT NULL,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    -- When its PayIn was PAID.
    paid_at         timestamptz,
    -- cycle_number is unique per subscription: one renewal per cycle, whoever runs it.
    PRIMARY KEY (tenant_id, subscription_id, cycle_number),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
    -- Deferred: a renewal links its cycle before creating the PayIn, so that a PayIn paid at
    -- once from custodial balances finds its cycle.
    FOREIGN KEY (tenant_id, payin_id) REFERENCES payins (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT subscription_cycles_period_check CHECK (period_end > period_start)
);

-- SubscriptionRenewalPaid finds the cycle of a PayIn; one cycle per PayIn.
CREATE UNIQUE INDEX subscription_cycles_payin_key ON subscription_cycles (tenant_id, payin_id);

-- SubscriptionListDueAllTenants (the subscription.renew_sweep): due subscriptions by
-- next_renewal_at, below the failure cap (core.RenewalMaxFailures = 5, the literal in the query).
CREATE INDEX subscriptions_due_idx ON subscriptions (next_renewal_at)
    WHERE status IN ('active', 'past_due') AND consecutive_failures < 5;
-- SubscriptionLapseDueAllTenants (the subscription.lapse_sweep): past_due subscriptions by
-- the start of their unpaid cycle.
CREATE INDEX subscriptions_past_due_idx ON subscriptions (current_period_end) WHERE status = 'past_due';
-- SubscriptionListStuck: a tenant's subscriptions at the failure cap.
CREATE INDEX subscriptions_stuck_idx ON subscriptions (tenant_id, id)
    WHERE status IN ('active', 'past_due') AND consecutive_failures >= 5;

-- +goose Down
DROP INDEX subscriptions_stuck_idx;
DROP INDEX subscriptions_past_due_idx;
DROP INDEX subscriptions_due_idx;
DROP TABLE subscription_cycles;
ALTER TABLE customers DROP COLUMN auto_pay;
