-- name: APIKeyCreate :one
-- APIKeyCreate stores a new admin key by its visible prefix and SHA-256 hash.
INSERT INTO api_keys (tenant_id, id, name, prefix, key_hash, created_at)
VALUES (@tenant_id::uuid, @id::uuid, @name::text, @prefix::text, @key_hash::bytea, @now::timestamptz)
RETURNING *;

-- name: APIKeyGetByPrefix :one
-- APIKeyGetByPrefix finds the key a request presents, across tenants: the key itself names
-- its tenant. The caller compares hashes in constant time and checks revoked_at.
-- Served by api_keys_prefix_key.
SELECT * FROM api_keys WHERE prefix = @prefix::text;

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
