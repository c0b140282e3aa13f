-- name: AddonCreate :one
-- AddonCreate stores a new add-on. A taken slug violates addons_slug_key; metadata that is
-- not an object, or a malformed perpetual add-on, violates its checks.
INSERT INTO addons (tenant_id, id, slug, name, metadata, created_at, updated_at)
VALUES (@tenant_id::uuid, @id::uuid, @slug::text, @name::text, @metadata::jsonb, @now::timestamptz, @now::timestamptz)
RETURNING *;

-- name: AddonGet :one
-- AddonGet reads one of a tenant's add-ons, archived or not (primary key).
SELECT * FROM addons WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid;

-- name: AddonList :many
-- AddonList pages through a tenant's add-ons, oldest first, after the cursor id (primary
-- key order). Archived add-ons are left out unless include_archived.
SELECT * FROM addons
WHERE tenant_id = @tenant_id::uuid
  AND (@include_archived::bool OR archived_at IS NULL)
  AND (sqlc.narg(after)::uuid IS NULL OR id > sqlc.narg(after)::uuid)
ORDER BY id
LIMIT @row_limit::int;

-- name: AddonUpdate :one
-- AddonUpdate changes the fields given (NULL keeps the current value; metadata is replaced
-- whole). No row means the add-on does not exist.
UPDATE addons SET
    name       = coalesce(sqlc.narg(name)::text, name),
    metadata   = coalesce(sqlc.narg(metadata)::jsonb, metadata),
    updated_at = @now::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid
RETURNING *;

-- name: AddonArchive :one
-- AddonArchive archives a live add-on; no row means it does not exist or is already
-- archived.
UPDATE addons SET archived_at = @now::timestamptz, updated_at = @now::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid AND archived_at IS NULL
RETURNING *;
