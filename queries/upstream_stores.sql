-- name: UpstreamStoreCreate :one
-- UpstreamStoreCreate creates a store of a tenant. No row means the policy is not one of the
-- tenant's live policies.
INSERT INTO upstream_stores (tenant_id, id, kind, name, base_url, api_key_sealed, policy_id, enabled, revoke_on_gone, created_at, updated_at)
SELECT p.tenant_id, @id::uuid, @kind::upstream_store_kind, @name::text, @base_url::text, @api_key_sealed::bytea, p.id,
       @enabled::boolean, @revoke_on_gone::boolean, sqlc.arg(now)::timestamptz, sqlc.arg(now)::timestamptz
FROM policies p
WHERE p.tenant_id = @tenant_id::uuid AND p.id = @policy_id::uuid AND p.archived_at IS NULL
RETURNING *;

-- name: UpstreamStoreGet :one
-- UpstreamStoreGet reads one of a tenant's stores (primary key).
SELECT * FROM upstream_stores WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid;

-- name: UpstreamStoreList :many
-- UpstreamStoreList pages through a tenant's stores, oldest first (primary key).
SELECT * FROM upstream_stores
WHERE tenant_id = @tenant_id::uuid
  AND (sqlc.narg(after)::uuid IS NULL OR id > sqlc.narg(after)::uuid)
ORDER BY id
LIMIT @row_limit::int;

-- name: UpstreamStoreUpdate :one
-- UpstreamStoreUpdate changes the given fields of a store; NULL keeps a field's value.
UPDATE upstream_stores
SET name           = coalesce(sqlc.narg(name)::text, name),
    base_url       = coalesce(sqlc.narg(base_url)::text, base_url),
    api_key_sealed = coalesce(sqlc.narg(api_key_sealed)::bytea, api_key_sealed),
    enabled        = coalesce(sqlc.narg(enabled)::boolean, enabled),
    revoke_on_gone = coalesce(sqlc.narg(revoke_on_gone)::boolean, revoke_on_gone),
    updated_at     = sqlc.arg(now)::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid
RETURNING *;
