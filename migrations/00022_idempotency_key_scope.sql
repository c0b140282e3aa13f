-- +goose Up
-- idempotency_keys.scope keeps the Idempotency-Keys of a tenant's admin requests (scope
-- 'admin', authenticated by its API key) apart from those of its buyers' requests (scope
-- 'buyer': purchase, PayIn cancel and retry, machines, tier changes, subscription cancel,
-- scoped by the tenant the request names), so that a buyer's key never meets an admin's.
ALTER TABLE idempotency_keys ADD COLUMN scope text NOT NULL DEFAULT 'admin' CHECK (scope IN ('admin', 'buyer'));
ALTER TABLE idempotency_keys ALTER COLUMN scope DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey, ADD PRIMARY KEY (tenant_id, scope, key);

-- +goose Down
DELETE FROM idempotency_keys WHERE scope = 'buyer';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey, ADD PRIMARY KEY (tenant_id, key);
ALTER TABLE idempotency_keys DROP COLUMN scope;
