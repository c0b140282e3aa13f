-- name: PolicyCreate :one
-- PolicyCreate stores a new policy (tier) of a product. A taken slug violates
-- policies_slug_key; period_days must be set exactly when is_recurring
-- (policies_period_check); an unknown product violates the foreign key.
INSERT INTO policies (
    tenant_id, id, product_id, slug, name, tier_rank, listed_currency, listed_value,
    is_recurring, period_days, grace_period_days, max_machines, entitlements,
    perpetual_after_days, qualifies_for_referrals, created_at, updated_at)
VALUES (
    @tenant_id::uuid, @id::uuid, @product_id::uuid, @slug::text, @name::text, @tier_rank::int,
    @listed_currency::currency, @listed_value::bigint, @is_recurring::bool, sqlc.narg(period_days)::int,
    @grace_period_days::int, sqlc.narg(max_machines)::int, @entitlements::text[],
    sqlc.narg(perpetual_after_days)::int, @qualifies_for_referrals::bool, @now::timestamptz, @now::timestamptz)
RETURNING *;

-- name: PolicyGet :one
-- PolicyGet reads one of a tenant's policies, archived or not (primary key).
SELECT * FROM policies WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid;

-- name: PolicyGetBySlug :one
-- PolicyGetBySlug reads one of a tenant's policies by slug, archived or not
-- (policies_slug_key).
SELECT * FROM policies WHERE tenant_id = @tenant_id::uuid AND slug = @slug::text;

-- name: PolicyList :many
-- PolicyList pages through a tenant's policies, oldest first, after the cursor id, of one
-- product when product_id is given. Archived policies are left out unless
-- include_archived. Primary key order; a tenant has few policies.
SELECT * FROM policies
WHERE tenant_id = @tenant_id::uuid
  AND (sqlc.narg(product_id)::uuid IS NULL OR product_id = sqlc.narg(product_id)::uuid)
  AND (@include_archived::bool OR archived_at IS NULL)
  AND (sqlc.narg(after)::uuid IS NULL OR id > sqlc.narg(after)::uuid)
ORDER BY id
LIMIT @row_limit::int;

-- name: PolicyUpdate :one
-- PolicyUpdate changes the fields given: a NULL argument keeps the current value, and the
-- nullable columns (max_machines, perpetual_after_days) change only when their set_ flag is
-- true, so they can be cleared. is_recurring and period_days never change: subscriptions
-- snapshot their price and period at creation, so a price change here applies to new
-- purchases only. No row means the policy does not exist.
UPDATE policies SET
    name                    = coalesce(sqlc.narg(name)::text, name),
    tier_rank               = coalesce(sqlc.narg(tier_rank)::int, tier_rank),
    listed_currency         = coalesce(sqlc.narg(listed_currency)::currency, listed_currency),
    listed_value            = coalesce(sqlc.narg(listed_value)::bigint, listed_value),
    grace_period_days       = coalesce(sqlc.narg(grace_period_days)::int, grace_period_days),
    max_machines            = CASE WHEN @set_max_machines::bool THEN sqlc.narg(max_machines)::int ELSE max_machines END,
    entitlements            = coalesce(sqlc.narg(entitlements)::text[], entitlements),
    perpetual_after_days    = CASE WHEN @set_perpetual_after_days::bool THEN sqlc.narg(perpetual_after_days)::int ELSE perpetual_after_days END,
    qualifies_for_referrals = coalesce(sqlc.narg(qualifies_for_referrals)::bool, qualifies_for_referrals),
    updated_at              = @now::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid
RETURNING *;

-- name: PolicyArchive :one
-- PolicyArchive archives a live policy; no row means it does not exist or is already
-- archived. Licences and subscriptions on it are unaffected.
UPDATE policies SET archived_at = @now::timestamptz, updated_at = @now::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid AND archived_at IS NULL
RETURNING *;
