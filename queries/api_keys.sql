-- name: APIKeyCreate :one
-- APIKeyCreate stores a new admin key by its visible prefix and SHA-256 hash.
INSERT INTO api_keys (tenant_id, id, name, prefix, key_hash, created_at)
VALUES (@tenant_id::uuid, @id::uuid, @name::text, @prefix::text, @key_hash::bytea, @now::timestamptz)
RETURNING *;

-- name: APIKeyGetByPrefix :one
-- APIKeyGetByPrefix finds the key a request presents, across tenants: the key itself names
-- its tenant. A key is found only when its tenant's mode is the key's (sandbox keys of
-- sandbox tenants, live keys of live tenants), and comes with its tenant's clock (NULL:
-- live), the request's time. The caller compares hashes in constant time and checks
-- revoked_at. Served by api_keys_prefix_key and the tenants primary key.
SELECT sqlc.embed(k), t.clock_at AS tenant_clock_at
FROM api_keys k
JOIN tenants t ON t.id = k.tenant_id
WHERE k.prefix = @prefix::text AND (t.clock_at IS NOT NULL) = @sandbox::bool;

-- name: APIKeyGet :one
-- APIKeyGet reads one of a tenant's keys (primary key).
SELECT * FROM api_keys WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid;

-- name: APIKeyList :many
-- APIKeyList pages through a tenant's keys, oldest first, after the cursor id
-- (primary key order; ids are UUIDv7).
SELECT * FROM api_keys
WHERE tenant_id = @tenant_id::uuid
  AND (sqlc.narg(after)::uuid IS NULL OR id > sqlc.narg(after)::uuid)
ORDER BY id
LIMIT @row_limit::int;

-- name: APIKeyRevoke :one
-- APIKeyRevoke revokes an active key; no row means it does not exist or was already revoked.
UPDATE api_keys SET revoked_at = @now::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid AND revoked_at IS NULL
RETURNING *;
