-- name: SigningKeyCreate :exec
-- SigningKeyCreate stores a tenant's Ed25519 key pair, the private key sealed.
INSERT INTO tenant_signing_keys (tenant_id, id, public_key, private_key_sealed, created_at)
VALUES (@tenant_id::uuid, @id::uuid, @public_key::bytea, @private_key_sealed::bytea, @now::timestamptz);

-- name: SigningKeyGet :one
-- SigningKeyGet reads a tenant's signing key (tenant_signing_keys_tenant_key) and whether the
-- tenant is a sandbox, whose keys are marked as such (tenants primary key).
SELECT k.*, (t.clock_at IS NOT NULL)::bool AS sandbox
FROM tenant_signing_keys k
JOIN tenants t ON t.id = k.tenant_id
WHERE k.tenant_id = @tenant_id::uuid;

-- name: SigningKeyGetPublicBySlug :one
-- SigningKeyGetPublicBySlug reads the public key offline verifiers fetch, by tenant slug.
SELECT t.id AS tenant_id, t.slug, k.public_key
FROM tenants t
JOIN tenant_signing_keys k ON k.tenant_id = t.id
WHERE t.slug = @slug::text;
