-- name: SubscriptionCreate :one
-- SubscriptionCreate starts a subscription of a customer to a recurring policy, with its
-- licence, snapshotting the policy's price and period: later price changes apply to new
-- purchases only. The first period starts now; the renewal is due at its end. No row means
-- the policy is not a live recurring policy of the tenant.
INSERT INTO subscriptions (tenant_id, id, customer_id, license_id, policy_id, status, price_currency, price_value,
                           period_days, current_period_start, current_period_end, next_renewal_at,
                           created_at, status_changed_at, updated_at)
SELECT p.tenant_id, @id::uuid, @customer_id::uuid, @license_id::uuid, p.id, 'active', p.listed_currency, p.listed_value,
       p.period_days, sqlc.arg(now)::timestamptz, sqlc.arg(now)::timestamptz + make_interval(0, 0, 0, p.period_days),
       sqlc.arg(now)::timestamptz + make_interval(0, 0, 0, p.period_days),
       sqlc.arg(now)::timestamptz, sqlc.arg(now)::timestamptz, sqlc.arg(now)::timestamptz
FROM policies p
WHERE p.tenant_id = @tenant_id::uuid AND p.id = @policy_id::uuid AND p.is_recurring AND p.archived_at IS NULL
RETURNING *;

-- name: SubscriptionAddonsAttach :exec
-- SubscriptionAddonsAttach records the add-ons a subscription was bought with.
INSERT INTO subscription_addons (tenant_id, subscription_id, addon_id)
SELECT @tenant_id::uuid, @subscription_id::uuid, unnest(@addon_ids::uuid[]);

-- name: SubscriptionGet :one
-- SubscriptionGet reads one of a tenant's subscriptions (primary key).
SELECT * FROM subscriptions WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid;

-- name: SubscriptionGetByLicense :one
-- SubscriptionGetByLicense reads a licence's subscription (subscriptions_license_key).
SELECT * FROM subscriptions WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid;

-- name: SubscriptionAddonIDs :many
-- SubscriptionAddonIDs lists the add-ons a subscription was bought with.
SELECT addon_id FROM subscription_addons
WHERE tenant_id = @tenant_id::uuid AND subscription_id = @subscription_id::uuid
ORDER BY addon_id;

-- name: SubscriptionList :many
-- SubscriptionList pages through a tenant's subscriptions, newest first, optionally by
-- customer (subscriptions_customer_idx) and status.
SELECT * FROM subscriptions
WHERE tenant_id = @tenant_id::uuid
  AND (sqlc.narg(customer_id)::uuid IS NULL OR customer_id = sqlc.narg(customer_id)::uuid)
  AND (sqlc.narg(status)::subscription_status IS NULL OR status = sqlc.narg(status)::subscription_status)
  AND (sqlc.narg(after)::uuid IS NULL OR id < sqlc.narg(after)::uuid)
ORDER BY id DESC
LIMIT @row_limit::int;

-- name: SubscriptionCancel :one
-- SubscriptionCancel cancels a subscription that is not cancelled yet, at once. No row
-- means it does not exist or is already cancelled.
UPDATE subscriptions
SET status = 'cancelled', cancelled_at = sqlc.arg(now)::timestamptz, next_renewal_at = NULL,
    status_changed_at = sqlc.arg(now)::timestamptz, updated_at = sqlc.arg(now)::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid AND status <> 'cancelled'
RETURNING *;

-- name: LicenseApplyCancellation :one
-- LicenseApplyCancellation applies the perpetual fallback (SPEC 2.4) to the licence of a
-- subscription just cancelled at @now:
--   - a live perpetual add-on whose allowed_ids name the subscription's policy: no expiry,
--     subscription_expiration_date = @now, and the add-on message;
--   - otherwise, cancelled at least perpetual_after_days after the subscription was
--     created: no expiry, subscription_expiration_date = @now, and the renew message;
--   - otherwise the licence expires at the end of the paid period, with no message.
-- These are the only writes of subscription_expiration_date and message.
WITH s AS (
    SELECT s.tenant_id, s.license_id, s.created_at, s.current_period_end,
           p.perpetual_after_days,
           EXISTS (SELECT 1 FROM subscription_addons sa
                   JOIN addons a ON a.tenant_id = sa.tenant_id AND a.id = sa.addon_id
                   WHERE sa.tenant_id = s.tenant_id AND sa.subscription_id = s.id
                     AND a.metadata @> '{"perpetual": true}'
                     AND a.metadata -> 'allowed_ids' @> to_jsonb(p.slug)) AS has_perpetual_addon
    FROM subscriptions s
    JOIN policies p ON p.tenant_id = s.tenant_id AND p.id = s.policy_id
    WHERE s.tenant_id = @tenant_id::uuid AND s.id = @subscription_id::uuid AND s.status = 'cancelled'
), rule AS (
    SELECT s.*,
           CASE
               WHEN s.has_perpetual_addon THEN 'perpetual_addon'
               WHEN sqlc.arg(now)::timestamptz >= s.created_at + make_interval(0, 0, 0, s.perpetual_after_days) THEN 'perpetual_after_days'
               ELSE 'expires'
           END AS fallback
    FROM s
)
UPDATE licenses l
SET expires_at = CASE WHEN rule.fallback = 'expires' THEN rule.current_period_end END,
    subscription_expiration_date = CASE WHEN rule.fallback <> 'expires' THEN sqlc.arg(now)::timestamptz END,
    message = CASE rule.fallback
        WHEN 'perpetual_addon' THEN 'This licence includes the perpetual add-on and is valid for product releases up to '
                                    || to_char(sqlc.arg(now)::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD') || '.'
        WHEN 'perpetual_after_days' THEN 'Your subscription has expired; please renew to access newer product releases.'
    END,
    updated_at = sqlc.arg(now)::timestamptz
FROM rule
WHERE l.tenant_id = rule.tenant_id AND l.id = rule.license_id
RETURNING l.*;
