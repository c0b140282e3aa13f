-- +goose Up
-- upstream_stores: external stores a tenant sells through (SPEC 5). The API key is sealed
-- with the server's secret key (it is sent back to the store) and never returned by the API.
-- Imported licences get policy_id. revoke_on_gone is the tenant's choice to also revoke a
-- licence the store no longer knows (besides emitting license.upstream_revoked).
CREATE TYPE upstream_store_kind AS ENUM ('jinxxy');

CREATE TABLE upstream_stores (
    tenant_id      uuid                NOT NULL REFERENCES tenants (id),
    id             uuid                NOT NULL,
    kind           upstream_store_kind NOT NULL,
    name           text                NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    base_url       text                NOT NULL CHECK (base_url ~ '^https?://' AND length(base_url) <= 2000),
    api_key_sealed bytea               NOT NULL,
    policy_id      uuid                NOT NULL,
    enabled        boolean             NOT NULL DEFAULT true,
    revoke_on_gone boolean             NOT NULL DEFAULT false,
    created_at     timestamptz         NOT NULL,
    updated_at     timestamptz         NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, policy_id) REFERENCES policies (tenant_id, id)
);

-- upstream_owners: a store's user id mapped to the tenant's customer.
CREATE TABLE upstream_owners (
    tenant_id         uuid NOT NULL,
    store_id          uuid NOT NULL,
    external_owner_id text NOT NULL CHECK (length(external_owner_id) BETWEEN 1 AND 200),
    customer_id       uuid NOT NULL,
    PRIMARY KEY (tenant_id, store_id, external_owner_id),
    FOREIGN KEY (tenant_id, store_id) REFERENCES upstream_stores (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

-- +goose Down
DROP TABLE upstream_owners;
DROP TABLE upstream_stores;
DROP TYPE upstream_store_kind;
