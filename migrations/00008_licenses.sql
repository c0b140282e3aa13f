-- +goose Up
-- licenses: what a customer may run. key is the signed licence key (internal/licensekey),
-- stable for the licence's life. entitlements and max_machines are copied from the policy
-- and add-ons at issue (and at tier changes), so a policy edit never changes live licences.
CREATE TYPE license_status AS ENUM ('active', 'suspended', 'revoked', 'expired');
CREATE TYPE license_origin AS ENUM ('issued', 'external');

CREATE TABLE licenses (
    tenant_id                    uuid           NOT NULL,
    id                           uuid           NOT NULL,
    policy_id                    uuid           NOT NULL,
    customer_id                  uuid           NOT NULL,
    key                          text           NOT NULL,
    status                       license_status NOT NULL DEFAULT 'active',
    issued_at                    timestamptz    NOT NULL,
    expires_at                   timestamptz,
    subscription_expiration_date timestamptz,
    message                      text,
    entitlements                 text[]         NOT NULL DEFAULT '{}',
    max_machines                 integer        CHECK (max_machines >= 0),
    origin                       license_origin NOT NULL DEFAULT 'issued',
    external_license_id          text,
    status_changed_at            timestamptz    NOT NULL,
    updated_at                   timestamptz    NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, policy_id) REFERENCES policies (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    CONSTRAINT licenses_external_check CHECK ((origin = 'external') = (external_license_id IS NOT NULL))
);

-- LicenseList filtered by customer or policy, newest first.
CREATE INDEX licenses_customer_idx ON licenses (tenant_id, customer_id, id);
CREATE INDEX licenses_policy_idx ON licenses (tenant_id, policy_id, id);
CREATE INDEX licenses_status_idx ON licenses (tenant_id, status, id);
-- LicenseExpireDueAllTenants: active licences whose expiry has passed.
CREATE INDEX licenses_expiry_idx ON licenses (expires_at) WHERE status = 'active' AND expires_at IS NOT NULL;
-- Re-importing an upstream licence updates it (revocation issue).
CREATE UNIQUE INDEX licenses_external_key ON licenses (tenant_id, external_license_id) WHERE external_license_id IS NOT NULL;

-- license_addons: the add-ons a licence was issued with.
CREATE TABLE license_addons (
    tenant_id  uuid NOT NULL,
    license_id uuid NOT NULL,
    addon_id   uuid NOT NULL,
    PRIMARY KEY (tenant_id, license_id, addon_id),
    FOREIGN KEY (tenant_id, license_id) REFERENCES licenses (tenant_id, id),
    FOREIGN KEY (tenant_id, addon_id) REFERENCES addons (tenant_id, id)
);

-- machines: activations of a licence by fingerprint. At most one active machine per
-- fingerprint and licence; at most max_machines active per licence (MachineActivate).
CREATE TABLE machines (
    tenant_id      uuid        NOT NULL,
    id             uuid        NOT NULL,
    license_id     uuid        NOT NULL,
    fingerprint    text        NOT NULL CHECK (length(fingerprint) BETWEEN 1 AND 255),
    name           text        CHECK (length(name) <= 200),
    activated_at   timestamptz NOT NULL,
    deactivated_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, license_id) REFERENCES licenses (tenant_id, id)
);

-- MachineActivate, MachineCountActive and LicenseValidate's fingerprint check.
CREATE UNIQUE INDEX machines_active_fingerprint_key ON machines (tenant_id, license_id, fingerprint) WHERE deactivated_at IS NULL;

-- +goose Down
DROP TABLE machines;
DROP TABLE license_addons;
DROP TABLE licenses;
DROP TYPE license_origin;
DROP TYPE license_status;
