-- +goose Up
-- clock_advances: the moves of a sandbox tenant's clock (POST /v1/admin/clock/advance). An
-- advance walks the clock from from_at to to_at, stopping at every instant something of the
-- tenant falls due (a renewal, an invoice expiry, a lapse, a licence expiry) and doing there
-- what the live sweeps would have done at that instant; clock_at is how far it has got.
-- Runs of a batch each (core.ClockAdvanceRun) add to the counts, so a long advance is a
-- chain of transactions that a crash resumes where the last commit left it.
CREATE TYPE clock_advance_status AS ENUM ('running', 'succeeded');

CREATE TABLE clock_advances (
    tenant_id              uuid                 NOT NULL REFERENCES tenants (id),
    id                     uuid                 NOT NULL,
    status                 clock_advance_status NOT NULL DEFAULT 'running',
    from_at                timestamptz          NOT NULL,
    to_at                  timestamptz          NOT NULL,
    clock_at               timestamptz          NOT NULL,
    instants               int                  NOT NULL DEFAULT 0,
    renewals_started       int                  NOT NULL DEFAULT 0,
    renewals_paid          int                  NOT NULL DEFAULT 0,
    renewals_failed        int                  NOT NULL DEFAULT 0,
    subscriptions_lapsed   int                  NOT NULL DEFAULT 0,
    licenses_expired       int                  NOT NULL DEFAULT 0,
    invoices_expired       int                  NOT NULL DEFAULT 0,
    payins_paid            int                  NOT NULL DEFAULT 0,
    payins_failed          int                  NOT NULL DEFAULT 0,
    created_at             timestamptz          NOT NULL,
    finished_at            timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK (from_at <= clock_at AND clock_at <= to_at),
    CHECK ((status = 'succeeded') = (finished_at IS NOT NULL))
);

-- One advance of a tenant's clock runs at a time: a second one while it runs is refused.
CREATE UNIQUE INDEX clock_advances_running_key ON clock_advances (tenant_id) WHERE status = 'running';

-- What an advance looks for, tenant by tenant, at each instant (ClockNextDue and the
-- ...DueForTenant queries): the live sweeps' indexes lead with the due time across tenants,
-- these with the tenant.
CREATE INDEX subscriptions_tenant_due_idx ON subscriptions (tenant_id, next_renewal_at)
    WHERE status IN ('active', 'past_due') AND consecutive_failures < 5;
CREATE INDEX subscriptions_tenant_past_due_idx ON subscriptions (tenant_id, current_period_end)
    WHERE status = 'past_due';
CREATE INDEX licenses_tenant_expiry_idx ON licenses (tenant_id, expires_at)
    WHERE status = 'active' AND expires_at IS NOT NULL;
-- Open sandbox invoices (provider 'sandbox': Tessera's own checkout for sandbox tenants),
-- which expire by their tenant's clock.
CREATE INDEX payin_invoices_sandbox_open_idx ON payin_invoices (tenant_id, expires_at)
    WHERE provider = 'sandbox' AND settled_at IS NULL AND cancelled_at IS NULL AND invalidated_at IS NULL;

-- +goose Down
DROP INDEX payin_invoices_sandbox_open_idx;
DROP INDEX licenses_tenant_expiry_idx;
DROP INDEX subscriptions_tenant_past_due_idx;
DROP INDEX subscriptions_tenant_due_idx;
DROP TABLE clock_advances;
DROP TYPE clock_advance_status;
