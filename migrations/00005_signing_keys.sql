-- +goose Up
-- tenant_signing_keys: each tenant's Ed25519 key pair for licence keys. The private key is
-- sealed with the server's secret key (AES-256-GCM, TESSERA_SECRET_KEY); the public key is
-- served so licence keys can be verified offline.
CREATE TABLE tenant_signing_keys (
    tenant_id          uuid        NOT NULL REFERENCES tenants (id),
    id                 uuid        NOT NULL,
    public_key         bytea       NOT NULL CHECK (length(public_key) = 32),
    private_key_sealed bytea       NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- SigningKeyGetCurrent: one signing key per tenant for now; rotation would relax this.
CREATE UNIQUE INDEX tenant_signing_keys_tenant_key ON tenant_signing_keys (tenant_id);

-- +goose Down
DROP TABLE tenant_signing_keys;
