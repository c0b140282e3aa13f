-- name: ProductCreate :one
-- ProductCreate stores a new product. A taken slug violates products_slug_key.
INSERT INTO products (tenant_id, id, slug, name, created_at, updated_at)
VALUES (@tenant_id::uuid, @id::uuid, @slug::text, @name::text, @now::timestamptz, @now::timestamptz)
RETURNING *;

-- name: ProductGet :one
-- ProductGet reads one of a tenant's products, archived or not (primary key).
SELECT * FROM products WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid;

-- name: ProductList :many
-- ProductList pages through a tenant's products, oldest first, after the cursor id
-- (primary key order; ids are UUIDv7). Archived products are left out unless
-- include_archived.
SELECT * FROM products
WHERE tenant_id = @tenant_id::uuid
  AND (@include_archived::bool OR archived_at IS NULL)
  AND (sqlc.narg(after)::uuid IS NULL OR id > sqlc.narg(after)::uuid)
ORDER BY id
LIMIT @row_limit::int;

-- name: ProductUpdate :one
-- ProductUpdate changes the fields given (NULL keeps the current value); no row means the
-- product does not exist.
UPDATE products SET
    name       = coalesce(sqlc.narg(name)::text, name),
    updated_at = @now::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid
RETURNING *;

-- name: ProductArchive :one
-- ProductArchive archives a live product; no row means it does not exist or is already
-- archived. Its policies and releases stay, for the licences that reference them.
UPDATE products SET archived_at = @now::timestamptz, updated_at = @now::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid AND archived_at IS NULL
RETURNING *;

-- name: ProductReleaseCreate :one
-- ProductReleaseCreate records a release of a product. A version already released violates
-- product_releases_version_key; an unknown product violates the foreign key.
INSERT INTO product_releases (tenant_id, id, product_id, version, released_at, created_at)
VALUES (@tenant_id::uuid, @id::uuid, @product_id::uuid, @version::text, @released_at::timestamptz, @now::timestamptz)
RETURNING *;

-- name: ProductReleaseList :many
-- ProductReleaseList pages through a product's releases, newest released first (ties by id),
-- after the cursor release. Served by product_releases_version_key's (tenant_id,
-- product_id) prefix; a product has few releases, so the sort is cheap.
SELECT r.* FROM product_releases r
WHERE r.tenant_id = @tenant_id::uuid AND r.product_id = @product_id::uuid
  AND (sqlc.narg(after)::uuid IS NULL OR (r.released_at, r.id) < (
        SELECT c.released_at, c.id FROM product_releases c
        WHERE c.tenant_id = @tenant_id::uuid AND c.id = sqlc.narg(after)::uuid))
ORDER BY r.released_at DESC, r.id DESC
LIMIT @row_limit::int;
