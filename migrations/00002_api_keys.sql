-- +goose Up
-- api_keys: a tenant's admin keys. Only the SHA-256 of a key is stored; its visible
-- prefix identifies it in lists and logs.
CREATE TABLE api_keys (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    id         uuid        NOT NULL,
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix     text        NOT NULL,
    key_hash   bytea       NOT NULL CHECK (length(key_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);

-- APIKeyGetByPrefix (authentication of every admin request).
CREATE UNIQUE INDEX api_keys_prefix_key ON api_keys (prefix);

-- +goose Down
DROP TABLE api_keys;
