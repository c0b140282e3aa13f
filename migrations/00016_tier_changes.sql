-- +goose Up
-- Tier changes (SPEC 4.2): a licence moving to another policy of its product. A buyer's
-- upgrade is pending until its tier_upgrade PayIn is PAID; a buyer's recurring downgrade is
-- scheduled for the subscription's next renewal; an admin's change is applied at once.
-- Applying one moves the licence (same id and key) to the new policy's entitlements, max
-- machines and grace, and its subscription to the new policy's price and period.
CREATE TYPE tier_change_kind AS ENUM ('upgrade', 'downgrade', 'admin');
CREATE TYPE tier_change_status AS ENUM ('pending', 'scheduled', 'applied', 'cancelled', 'failed');

CREATE TABLE tier_changes (
    tenant_id       uuid               NOT NULL,
    id              uuid               NOT NULL,
    license_id      uuid               NOT NULL,
    subscription_id uuid,
    kind            tier_change_kind   NOT NULL,
    status          tier_change_status NOT NULL,
    from_policy_id  uuid               NOT NULL,
    to_policy_id    uuid               NOT NULL,
    -- What the change charged (the quote, re-computed by the server): 0 for downgrades and
    -- admin changes.
    charge_currency currency           NOT NULL,
    charge_value    bigint             NOT NULL CHECK (charge_value >= 0),
    -- The tier_upgrade PayIn paying an upgrade.
    payin_id        uuid,
    -- When it takes effect: now for upgrades and admin changes, the next renewal for a
    -- scheduled downgrade.
    effective_at    timestamptz        NOT NULL,
    created_at      timestamptz        NOT NULL,
    applied_at      timestamptz,
    cancelled_at    timestamptz,
    updated_at      timestamptz        NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, license_id) REFERENCES licenses (tenant_id, id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
    FOREIGN KEY (tenant_id, from_policy_id) REFERENCES policies (tenant_id, id),
    FOREIGN KEY (tenant_id, to_policy_id) REFERENCES policies (tenant_id, id),
    -- Deferred: an upgrade records its change before creating the PayIn, so that a PayIn
    -- paid at once finds its change.
    FOREIGN KEY (tenant_id, payin_id) REFERENCES payins (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT tier_changes_payin_check CHECK ((kind = 'upgrade') = (payin_id IS NOT NULL)),
    CONSTRAINT tier_changes_policies_check CHECK (from_policy_id <> to_policy_id),
    CONSTRAINT tier_changes_applied_check CHECK ((status = 'applied') = (applied_at IS NOT NULL)),
    CONSTRAINT tier_changes_cancelled_check CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
);

-- TierChangeGetByPayIn: the settlement of a tier_upgrade PayIn finds its change.
CREATE UNIQUE INDEX tier_changes_payin_key ON tier_changes (tenant_id, payin_id) WHERE payin_id IS NOT NULL;
-- At most one buyer's upgrade waiting for its payment per licence (an admin's change is
-- pending only inside the transaction that applies it).
CREATE UNIQUE INDEX tier_changes_pending_key ON tier_changes (tenant_id, license_id) WHERE status = 'pending' AND kind = 'upgrade';
-- At most one scheduled downgrade per licence; the renewal finds it (TierChangeScheduled).
CREATE UNIQUE INDEX tier_changes_scheduled_key ON tier_changes (tenant_id, license_id) WHERE status = 'scheduled';
-- TierChangeList: a licence's changes, newest first.
CREATE INDEX tier_changes_license_idx ON tier_changes (tenant_id, license_id, id);

-- +goose Down
DROP TABLE tier_changes;
DROP TYPE tier_change_status;
DROP TYPE tier_change_kind;
