-- name: TierChangeQuote :one
-- TierChangeQuote prices moving a licence to policy @to_policy_id at @now (SPEC 4.2). The
-- licence's current price is its subscription's (the snapshot it renews at) or, without
-- one, its policy's listed price; the target's is its listed price.
--   - direction: upgrade when the target has the higher tier_rank, downgrade when the lower;
--     at equal ranks the higher price per day is the upgrade; none when both are equal.
--   - charge (minor units of the target's currency), for an upgrade only, else 0:
--     perpetual: the flat difference of the listed prices (Standard 2500 -> Pro 7500 = 5000);
--     recurring: the difference per day over the days left in the paid period,
--       floor(remaining_days * (to_value * from_period_days - from_value * to_period_days)
--             / (to_period_days * from_period_days)),
--     where remaining_days is the time to current_period_end rounded up to whole days
--     (a started day counts), at most from_period_days and at least 0: whole minor units,
--     rounded down (in the buyer's favour), exact in numeric, never negative.
--   - effective_at: @now for an upgrade; the next renewal for a recurring downgrade (@now
--     for a recurring licence without a subscription: it has no renewal to wait for).
-- Periods and remaining_days are 0 for perpetual policies. The same_* columns let the
-- caller refuse what it does not allow. No row means the licence
-- or the policy does not exist for the tenant. Primary keys, and subscriptions_license_key.
WITH cur AS (
    SELECT l.tenant_id, l.id AS license_id, l.status AS license_status,
           fp.id AS from_policy_id, fp.product_id AS from_product_id, fp.tier_rank AS from_tier_rank,
           fp.is_recurring AS from_recurring,
           s.id AS subscription_id, s.status AS subscription_status, s.current_period_end, s.next_renewal_at,
           coalesce(s.price_currency, fp.listed_currency) AS from_currency,
           coalesce(s.price_value, fp.listed_value) AS from_value,
           coalesce(s.period_days, fp.period_days) AS from_period_days
    FROM licenses l
    JOIN policies fp ON fp.tenant_id = l.tenant_id AND fp.id = l.policy_id
    LEFT JOIN subscriptions s ON s.tenant_id = l.tenant_id AND s.license_id = l.id
    WHERE l.tenant_id = sqlc.arg(tenant_id)::uuid AND l.id = sqlc.arg(license_id)::uuid
), q AS (
    SELECT cur.*,
           tp.id AS to_policy_id, tp.slug AS to_slug, tp.product_id AS to_product_id, tp.tier_rank AS to_tier_rank,
           tp.is_recurring AS to_recurring, tp.archived_at IS NOT NULL AS to_archived,
           tp.listed_currency AS to_currency, tp.listed_value AS to_value, tp.period_days AS to_period_days,
           CASE WHEN cur.current_period_end IS NOT NULL THEN
               LEAST(cur.from_period_days, GREATEST(0, ceil(extract(epoch FROM cur.current_period_end - sqlc.arg(now)::timestamptz) / 86400)))::int
           END AS remaining_days,
           -- Prices per day, cross-multiplied by the periods (1 for perpetual policies).
           tp.listed_value::numeric * coalesce(cur.from_period_days, 1) AS to_weight,
           cur.from_value::numeric * coalesce(tp.period_days, 1) AS from_weight
    FROM cur
    JOIN policies tp ON tp.tenant_id = cur.tenant_id AND tp.id = sqlc.arg(to_policy_id)::uuid
), d AS (
    SELECT q.*,
           CASE
               WHEN q.to_tier_rank > q.from_tier_rank THEN 'upgrade'
               WHEN q.to_tier_rank < q.from_tier_rank THEN 'downgrade'
               WHEN q.to_weight > q.from_weight THEN 'upgrade'
               WHEN q.to_weight < q.from_weight THEN 'downgrade'
               ELSE 'none'
           END AS direction
    FROM q
)
SELECT d.license_id, d.license_status, d.from_policy_id, d.to_policy_id, d.to_slug,
       d.subscription_id, d.subscription_status, d.current_period_end, d.next_renewal_at,
       d.from_currency, d.from_value, coalesce(d.from_period_days, 0)::int AS from_period_days,
       d.to_currency, d.to_value, coalesce(d.to_period_days, 0)::int AS to_period_days,
       coalesce(d.remaining_days, 0)::int AS remaining_days, d.direction::text AS direction, d.to_archived::boolean AS to_archived,
       d.from_product_id = d.to_product_id AS same_product,
       d.from_recurring = d.to_recurring AS same_recurrence,
       d.from_currency = d.to_currency AS same_currency,
       d.from_policy_id = d.to_policy_id AS same_policy,
       (CASE
           WHEN d.direction <> 'upgrade' OR d.from_currency <> d.to_currency THEN 0
           WHEN NOT d.from_recurring THEN GREATEST(0, d.to_value - d.from_value)
           ELSE GREATEST(0, floor(d.remaining_days * (d.to_weight - d.from_weight)
                                  / (d.to_period_days::numeric * d.from_period_days)))
       END)::bigint AS charge_value,
       (CASE
           WHEN d.direction = 'downgrade' AND d.from_recurring THEN coalesce(d.next_renewal_at, d.current_period_end, sqlc.arg(now)::timestamptz)
           ELSE sqlc.arg(now)::timestamptz
       END)::timestamptz AS effective_at
FROM d;

-- name: TierChangeCreate :one
-- TierChangeCreate records a tier change. tier_changes_pending_key refuses a second upgrade
-- waiting for payment on one licence, tier_changes_scheduled_key a second scheduled
-- downgrade.
INSERT INTO tier_changes (tenant_id, id, license_id, subscription_id, kind, status, from_policy_id, to_policy_id,
                          charge_currency, charge_value, payin_id, effective_at, created_at, updated_at)
VALUES (sqlc.arg(tenant_id)::uuid, sqlc.arg(id)::uuid, sqlc.arg(license_id)::uuid, sqlc.narg(subscription_id)::uuid,
        sqlc.arg(kind)::tier_change_kind, sqlc.arg(status)::tier_change_status, sqlc.arg(from_policy_id)::uuid,
        sqlc.arg(to_policy_id)::uuid, sqlc.arg(charge_currency)::currency, sqlc.arg(charge_value)::bigint,
        sqlc.narg(payin_id)::uuid, sqlc.arg(effective_at)::timestamptz, sqlc.arg(now)::timestamptz, sqlc.arg(now)::timestamptz)
RETURNING *;

-- name: TierChangeApply :one
-- TierChangeApply applies tier change @id if it is still pending or scheduled (a guarded
-- update: of two concurrent applications one finds no row), in one statement:
--   - the change becomes applied at @now, and any other downgrade scheduled for the licence
--     is cancelled (it was relative to the old tier);
--   - the licence (same id and key) takes the new policy, its entitlements plus those of the
--     licence's add-ons (sorted, distinct), its max_machines, and an expiry of the paid
--     period's end plus the new policy's grace days (tessera_license_expiry) when it has a
--     subscription and an expiry (a licence without expiry keeps none; one without
--     subscription keeps its own);
--   - the licence's subscription takes the new policy, its listed price and period: the
--     current period stands, the next renewal charges the new price for the new period.
-- It returns the licence. No row means the change is not pending or scheduled.
WITH tc AS (
    UPDATE tier_changes
    SET status = 'applied', applied_at = sqlc.arg(now)::timestamptz, updated_at = sqlc.arg(now)::timestamptz
    WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid AND status IN ('pending', 'scheduled')
    RETURNING *
), superseded AS (
    UPDATE tier_changes o
    SET status = 'cancelled', cancelled_at = sqlc.arg(now)::timestamptz, updated_at = sqlc.arg(now)::timestamptz
    FROM tc
    WHERE o.tenant_id = tc.tenant_id AND o.license_id = tc.license_id AND o.status = 'scheduled' AND o.id <> tc.id
    RETURNING o.id
), sub AS (
    UPDATE subscriptions s
    SET policy_id = p.id, price_currency = p.listed_currency, price_value = p.listed_value, period_days = p.period_days,
        updated_at = sqlc.arg(now)::timestamptz
    FROM tc
    JOIN policies p ON p.tenant_id = tc.tenant_id AND p.id = tc.to_policy_id
    WHERE s.tenant_id = tc.tenant_id AND s.license_id = tc.license_id AND p.is_recurring
    RETURNING s.current_period_end
)
UPDATE licenses l
SET policy_id = p.id,
    entitlements = ARRAY(SELECT DISTINCT f FROM (
                       SELECT unnest(p.entitlements) AS f
                       UNION
                       SELECT jsonb_array_elements_text(a.metadata -> 'features')
                       FROM license_addons la
                       JOIN addons a ON a.tenant_id = la.tenant_id AND a.id = la.addon_id
                       WHERE la.tenant_id = l.tenant_id AND la.license_id = l.id
                         AND jsonb_typeof(a.metadata -> 'features') = 'array') AS e
                   ORDER BY f)::text[],
    max_machines = p.max_machines,
    expires_at = CASE
        WHEN l.expires_at IS NULL OR sub.current_period_end IS NULL THEN l.expires_at
        ELSE tessera_license_expiry(sub.current_period_end, p.grace_period_days)
    END,
    updated_at = sqlc.arg(now)::timestamptz
FROM tc
JOIN policies p ON p.tenant_id = tc.tenant_id AND p.id = tc.to_policy_id
LEFT JOIN sub ON true
WHERE l.tenant_id = tc.tenant_id AND l.id = tc.license_id
RETURNING l.*;

-- name: TierChangeGet :one
-- TierChangeGet reads one of a tenant's tier changes (primary key).
SELECT * FROM tier_changes WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid;

-- name: TierChangeGetByPayIn :one
-- TierChangeGetByPayIn finds the upgrade a tier_upgrade PayIn pays (tier_changes_payin_key).
SELECT * FROM tier_changes WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND payin_id = sqlc.arg(payin_id)::uuid;

-- name: TierChangeOpen :one
-- TierChangeOpen finds a licence's buyer change waiting in @status: the upgrade pending its
-- payment (tier_changes_pending_key) or the downgrade scheduled for the next renewal
-- (tier_changes_scheduled_key). No row means none is.
SELECT * FROM tier_changes
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND license_id = sqlc.arg(license_id)::uuid
  AND status = sqlc.arg(status)::tier_change_status AND kind IN ('upgrade', 'downgrade');

-- name: TierChangeEnd :many
-- TierChangeEnd ends a licence's tier changes in status @from_status (a pending upgrade, a
-- scheduled downgrade) that are not yet applied: cancelled, or failed when @failed (its PayIn
-- failed), by licence (@license_id) or by PayIn (@payin_id); with neither it ends nothing. It
-- returns what it ended. tier_changes_pending_key / tier_changes_scheduled_key, or
-- tier_changes_payin_key.
UPDATE tier_changes
SET status = CASE WHEN sqlc.arg(failed)::boolean THEN 'failed'::tier_change_status ELSE 'cancelled'::tier_change_status END,
    cancelled_at = CASE WHEN sqlc.arg(failed)::boolean THEN NULL ELSE sqlc.arg(now)::timestamptz END,
    updated_at = sqlc.arg(now)::timestamptz
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND status = sqlc.arg(from_status)::tier_change_status
  AND (license_id = sqlc.narg(license_id)::uuid OR payin_id = sqlc.narg(payin_id)::uuid)
RETURNING *;

-- name: TierChangeList :many
-- TierChangeList pages through a licence's tier changes, newest first
-- (tier_changes_license_idx).
SELECT * FROM tier_changes
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND license_id = sqlc.arg(license_id)::uuid
  AND (sqlc.narg(after)::uuid IS NULL OR id < sqlc.narg(after)::uuid)
ORDER BY id DESC
LIMIT sqlc.arg(row_limit)::int;

-- name: TierChangeLockSubscription :exec
-- TierChangeLockSubscription locks the subscription of a licence, if it has one, before a tier
-- change of the licence is applied: renewals (SubscriptionLockForRenewal) and tier changes of
-- one subscription then take their locks in the same order, the subscription's row first,
-- and never deadlock. FOR NO KEY UPDATE, like the UPDATE it precedes: it does not wait for
-- (nor block) the key-share locks that rows referencing the subscription take (a tier change
-- or a cycle being recorded), which FOR UPDATE would, deadlocking two such transactions.
-- subscriptions_license_key.
SELECT id FROM subscriptions
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND license_id = sqlc.arg(license_id)::uuid
FOR NO KEY UPDATE;
