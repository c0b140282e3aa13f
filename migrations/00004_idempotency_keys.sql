-- +goose Up
-- idempotency_keys: the first successful response to a write sent with an Idempotency-Key,
-- stored in the transaction of the write, replayed for the same key and request.
CREATE TABLE idempotency_keys (
    tenant_id        uuid        NOT NULL REFERENCES tenants (id),
    key              text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash     bytea       NOT NULL CHECK (length(request_hash) = 32),
    response_status  integer     NOT NULL CHECK (response_status BETWEEN 100 AND 599),
    response_headers jsonb       NOT NULL DEFAULT '{}',
    response_body    bytea       NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- IdempotencyKeyDeleteExpired (the idempotency.expire_sweep job).
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
