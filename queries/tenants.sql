-- name: TenantCreate :one
-- TenantCreate inserts a tenant; a taken slug violates tenants_slug_key. A NULL clock_at
-- makes a live tenant, a time a sandbox tenant whose clock stands there.
INSERT INTO tenants (id, slug, name, created_at, clock_at)
VALUES (@id::uuid, @slug::text, @name::text, @now::timestamptz, sqlc.narg(clock_at)::timestamptz)
RETURNING *;

-- name: TenantGet :one
-- TenantGet reads one tenant by id (primary key).
SELECT * FROM tenants WHERE id = @id::uuid;

-- name: TenantGetBySlug :one
-- TenantGetBySlug reads one tenant by slug (tenants_slug_key).
SELECT * FROM tenants WHERE slug = @slug::text;

-- name: TenantGetByPayIn :one
-- TenantGetByPayIn reads the tenant of a PayIn named by its id alone (a buyer's capability,
-- as PayInGetAnyTenant reads it), with its clock: a buyer's request about a PayIn runs at its
-- tenant's time.
SELECT t.* FROM payins p JOIN tenants t ON t.id = p.tenant_id WHERE p.id = @payin_id::uuid;

-- name: TenantGetFirst :one
-- TenantGetFirst reads the oldest tenant, if any; make run uses it to decide whether to
-- bootstrap a demo tenant. Reads across tenants.
SELECT * FROM tenants ORDER BY created_at, id LIMIT 1;

-- name: TenantReset :many
-- TenantReset deletes all of a sandbox tenant's data but the tenant, its API keys and its
-- signing key, and its unfinished River jobs, and restarts its clock at restart_at when
-- given (migration 00028, tenant_reset): the rows deleted per table, those with none left
-- out. A live tenant violates tenants_sandbox_only.
SELECT r.table_name::text AS table_name, r.deleted::bigint AS deleted
FROM tenant_reset(@tenant_id::uuid, sqlc.narg(restart_at)::timestamptz) r
WHERE r.deleted > 0
ORDER BY r.table_name;

-- name: TenantClone :many
-- TenantClone copies all of sandbox tenant source's data and unfinished River jobs into
-- clone, a new sandbox tenant, each licence key old_keys[i] becoming new_keys[i] and each
-- PayIn getting a new id (migration 00028, tenant_clone): the rows copied per table, those
-- with none left out. A live tenant violates tenants_sandbox_only.
SELECT c.table_name::text AS table_name, c.copied::bigint AS copied
FROM tenant_clone(@source_id::uuid, @clone_id::uuid, @old_keys::text[], @new_keys::text[]) c
WHERE c.copied > 0
ORDER BY c.table_name;

-- name: TenantClockAdvanceRunning :one
-- TenantClockAdvanceRunning says whether an advance of a sandbox tenant's clock is running
-- (clock_advances_running_key): a reset or a clone waits for it to finish.
SELECT EXISTS (SELECT FROM clock_advances WHERE tenant_id = @tenant_id::uuid AND status = 'running') AS running;
