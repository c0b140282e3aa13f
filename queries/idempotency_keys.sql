-- name: IdempotencyKeyLock :one
-- IdempotencyKeyLock takes a transaction-scoped advisory lock on (tenant, scope, key)
-- without waiting: false means another request with the same key is still in flight.
SELECT pg_try_advisory_xact_lock(hashtextextended(CAST(@tenant_id::uuid AS text) || '/' || @scope::text || '/' || @key::text, 0));

-- name: IdempotencyKeyGet :one
-- IdempotencyKeyGet reads the stored response for a key unless it has expired (primary key).
SELECT * FROM idempotency_keys
WHERE tenant_id = @tenant_id::uuid AND scope = @scope::text AND key = @key::text AND expires_at > @now::timestamptz;

-- name: IdempotencyKeyStore :exec
-- IdempotencyKeyStore records the response of a write in the write's transaction. An
-- expired row for the same key is replaced.
INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, response_status, response_headers, response_body, created_at, expires_at)
VALUES (@tenant_id::uuid, @scope::text, @key::text, @request_hash::bytea, @response_status::int, @response_headers::jsonb,
        @response_body::bytea, @now::timestamptz, @expires_at::timestamptz)
ON CONFLICT (tenant_id, scope, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status,
    response_headers = EXCLUDED.response_headers, response_body = EXCLUDED.response_body,
    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
WHERE idempotency_keys.expires_at <= EXCLUDED.created_at;

-- name: IdempotencyKeyDeleteExpired :execrows
-- IdempotencyKeyDeleteExpired deletes up to a batch of expired keys across all tenants
-- (the idempotency.expire_sweep job). Served by idempotency_keys_expires_at_idx. A sandbox
-- tenant's keys expire by its own clock: one whose clock stands in the past keeps them for
-- the TTL of its time (tenants primary key).
DELETE FROM idempotency_keys
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM idempotency_keys k
    WHERE k.expires_at <= @now::timestamptz
      AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = k.tenant_id AND k.expires_at > t.clock_at)
    ORDER BY expires_at
    LIMIT @batch::int
    FOR UPDATE SKIP LOCKED));
