-- name: TenantCreate :one
-- TenantCreate inserts a tenant; a taken slug violates tenants_slug_key.
INSERT INTO tenants (id, slug, name, created_at)
VALUES (@id::uuid, @slug::text, @name::text, @now::timestamptz)
RETURNING *;

-- name: TenantGet :one
-- TenantGet reads one tenant by id (primary key).
SELECT * FROM tenants WHERE id = @id::uuid;

-- name: TenantGetBySlug :one
-- TenantGetBySlug reads one tenant by slug (tenants_slug_key).
SELECT * FROM tenants WHERE slug = @slug::text;

-- name: TenantGetFirst :one
-- TenantGetFirst reads the oldest tenant, if any; make run uses it to decide whether to
-- bootstrap a demo tenant. Reads across tenants.
SELECT * FROM tenants ORDER BY created_at, id LIMIT 1;
