-- name: SubscriptionListDueAllTenants :many
-- SubscriptionListDueAllTenants is the subscription.renew_sweep's pick, across all tenants:
-- up to @batch subscriptions that are active or past_due, due (next_renewal_at <= @now) and
-- below the failure cap (5, core.RenewalMaxFailures), oldest due first, each with its price
-- currency (to pick its quote) and the number of the cycle its renewal opens (the last
-- cycle's + 1; 1 after the first period). Rows
-- another sweep holds are skipped. Served by subscriptions_due_idx (the predicate matches the
-- partial index), and subscription_cycles' primary key for the cycle number.
-- Live tenants only: a sandbox tenant's (clock_at set) run by its own clock, not this sweep's
-- (tenants primary key, probed per candidate row in index order).
SELECT s.tenant_id, s.id, s.price_currency,
       (coalesce((SELECT max(c.cycle_number) FROM subscription_cycles c
                  WHERE c.tenant_id = s.tenant_id AND c.subscription_id = s.id), 0) + 1)::int AS cycle_number
FROM subscriptions s
WHERE s.status IN ('active', 'past_due') AND s.consecutive_failures < 5
  AND s.next_renewal_at <= sqlc.arg(now)::timestamptz
  AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = s.tenant_id AND t.clock_at IS NOT NULL)
ORDER BY s.next_renewal_at
LIMIT sqlc.arg(batch)::int
FOR UPDATE OF s SKIP LOCKED;

-- name: SubscriptionRenewalGet :one
-- SubscriptionRenewalGet reads what a renewal of a subscription needs, and decides whether
-- cycle @cycle_number is the one to open now: due is true when the subscription is active or
-- past_due, its renewal is due at @now, it is below the failure cap, and @cycle_number is
-- the next cycle (a job for a cycle already opened, or a stale one, is not due). The renewal
-- reads it again after SubscriptionLockForRenewal, so that it decides on the latest state.
-- change_scheduled says a tier change of its licence waits for this renewal (TierChangeOpen
-- would find it): the renewal applies it first. Primary keys of subscriptions and customers,
-- subscription_cycles' primary key, and tier_changes_scheduled_key.
SELECT s.tenant_id, s.id, s.customer_id, s.policy_id, s.license_id, s.price_currency, s.price_value,
       c.auto_pay,
       (s.status IN ('active', 'past_due') AND s.consecutive_failures < 5
        AND s.next_renewal_at <= sqlc.arg(now)::timestamptz
        AND coalesce(last.cycle_number, 0) + 1 = sqlc.arg(cycle_number)::int)::boolean AS due,
       EXISTS (SELECT 1 FROM tier_changes tc
               WHERE tc.tenant_id = s.tenant_id AND tc.license_id = s.license_id
                 AND tc.status = 'scheduled' AND tc.kind IN ('upgrade', 'downgrade'))::boolean AS change_scheduled
FROM subscriptions s
JOIN customers c ON c.tenant_id = s.tenant_id AND c.id = s.customer_id
LEFT JOIN LATERAL (
    SELECT sc.cycle_number FROM subscription_cycles sc
    WHERE sc.tenant_id = s.tenant_id AND sc.subscription_id = s.id
    ORDER BY sc.cycle_number DESC LIMIT 1) last ON true
WHERE s.tenant_id = sqlc.arg(tenant_id)::uuid AND s.id = sqlc.arg(id)::uuid;

-- name: SubscriptionLockForRenewal :one
-- SubscriptionLockForRenewal locks a subscription's row for its renewal: renewals (and the
-- settlement of a renewal) and tier changes of one subscription run one at a time. FOR NO
-- KEY UPDATE, which does not conflict with the key-share locks of rows being inserted that
-- reference the subscription (TierChangeLockSubscription says why). Primary key.
SELECT id FROM subscriptions
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid
FOR NO KEY UPDATE;

-- name: SubscriptionRenewalStart :one
-- SubscriptionRenewalStart opens cycle @cycle_number of a due subscription, paid by PayIn
-- @payin_id: the cycle starts where the previous one ends (the last cycle's end, or the
-- current period's end when there is none) and lasts the subscription's period_days; the
-- subscription becomes past_due until it is paid, its next renewal is due at the cycle's end,
-- and last_renewal_attempt_at is @now. The insert fails on the primary key if the cycle
-- exists (one renewal per cycle). No row means the subscription is not active or past_due.
WITH last AS (
    SELECT s.tenant_id, s.id, s.period_days,
           coalesce((SELECT sc.period_end FROM subscription_cycles sc
                     WHERE sc.tenant_id = s.tenant_id AND sc.subscription_id = s.id
                     ORDER BY sc.cycle_number DESC LIMIT 1), s.current_period_end) AS period_start
    FROM subscriptions s
    WHERE s.tenant_id = sqlc.arg(tenant_id)::uuid AND s.id = sqlc.arg(subscription_id)::uuid
      AND s.status IN ('active', 'past_due')
), cycle AS (
    INSERT INTO subscription_cycles (tenant_id, subscription_id, cycle_number, payin_id, period_start, period_end, created_at)
    SELECT last.tenant_id, last.id, sqlc.arg(cycle_number)::int, sqlc.arg(payin_id)::uuid, last.period_start,
           last.period_start + make_interval(0, 0, 0, last.period_days), sqlc.arg(now)::timestamptz
    FROM last
    RETURNING *
)
UPDATE subscriptions s
SET status = 'past_due',
    status_changed_at = CASE WHEN s.status = 'past_due' THEN s.status_changed_at ELSE sqlc.arg(now)::timestamptz END,
    next_renewal_at = cycle.period_end,
    last_renewal_attempt_at = sqlc.arg(now)::timestamptz,
    updated_at = sqlc.arg(now)::timestamptz
FROM cycle
WHERE s.tenant_id = cycle.tenant_id AND s.id = cycle.subscription_id
RETURNING s.*, cycle.cycle_number, cycle.period_start, cycle.period_end;

-- name: SubscriptionRenewalFailed :one
-- SubscriptionRenewalFailed records a renewal that could not be quoted or charged: one more
-- consecutive failure, the next attempt backed off by the failure count (5 min, 30 min, 2 h,
-- 6 h, then 12 h; at 5 failures the sweep stops, SubscriptionListDueAllTenants), past_due
-- (the period ended unpaid), last_renewal_attempt_at = @now. No row means the subscription is
-- not active or past_due.
UPDATE subscriptions
SET consecutive_failures = consecutive_failures + 1,
    next_renewal_at = sqlc.arg(now)::timestamptz + CASE consecutive_failures
        WHEN 0 THEN make_interval(0, 0, 0, 0, 0, 5)
        WHEN 1 THEN make_interval(0, 0, 0, 0, 0, 30)
        WHEN 2 THEN make_interval(0, 0, 0, 0, 2)
        WHEN 3 THEN make_interval(0, 0, 0, 0, 6)
        ELSE make_interval(0, 0, 0, 0, 12)
    END,
    last_renewal_attempt_at = sqlc.arg(now)::timestamptz,
    status = 'past_due',
    status_changed_at = CASE WHEN status = 'past_due' THEN status_changed_at ELSE sqlc.arg(now)::timestamptz END,
    updated_at = sqlc.arg(now)::timestamptz
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid AND status IN ('active', 'past_due')
RETURNING *;

-- name: SubscriptionRenewalPaid :one
-- SubscriptionRenewalPaid applies the payment of a renewal PayIn to its subscription — the
-- cycle the PayIn opened, or that the first PayIn of its retry chain (@genesis_id) opened
-- (subscription_cycles_payin_key) — unless the subscription was cancelled:
--   - the cycle is marked paid at @now;
--   - the current period becomes the paid cycle when it ends later than the current one (a
--     cycle paid after a later one changes no period);
--   - failures are reset to 0;
--   - status: past_due while a later cycle is still unpaid, active otherwise — also when the
--     subscription had lapsed: a renewal paid late reactivates the subscription for the
--     paid cycle (its period as scheduled, not shifted to the payment's time);
--   - the next renewal is due at the end of the latest cycle.
-- applied says whether the paid cycle became the current period. No row means the PayIn
-- opened no cycle, its cycle is already paid, or the subscription is cancelled.
WITH cycle AS (
    UPDATE subscription_cycles
    SET paid_at = sqlc.arg(now)::timestamptz
    WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND payin_id IN (sqlc.arg(payin_id)::uuid, sqlc.arg(genesis_id)::uuid)
      AND paid_at IS NULL
    RETURNING *
), decided AS (
    SELECT s.tenant_id, s.id, cycle.cycle_number, cycle.period_start, cycle.period_end,
           cycle.period_end > s.current_period_end AS applied,
           EXISTS (SELECT 1 FROM subscription_cycles later
                   WHERE later.tenant_id = s.tenant_id AND later.subscription_id = s.id
                     AND later.cycle_number > cycle.cycle_number AND later.paid_at IS NULL) AS later_unpaid
    FROM cycle
    JOIN subscriptions s ON s.tenant_id = cycle.tenant_id AND s.id = cycle.subscription_id
    WHERE s.status <> 'cancelled'
)
UPDATE subscriptions s
SET status = CASE WHEN d.later_unpaid THEN 'past_due'::subscription_status ELSE 'active'::subscription_status END,
    status_changed_at = CASE WHEN s.status = (CASE WHEN d.later_unpaid THEN 'past_due'::subscription_status ELSE 'active'::subscription_status END)
                             THEN s.status_changed_at ELSE sqlc.arg(now)::timestamptz END,
    current_period_start = CASE WHEN d.applied THEN d.period_start ELSE s.current_period_start END,
    current_period_end = CASE WHEN d.applied THEN d.period_end ELSE s.current_period_end END,
    consecutive_failures = 0,
    next_renewal_at = GREATEST(s.next_renewal_at, d.period_end),
    updated_at = sqlc.arg(now)::timestamptz
FROM decided d
WHERE s.tenant_id = d.tenant_id AND s.id = d.id
RETURNING s.*, d.cycle_number, d.applied;

-- name: LicenseApplyRenewal :one
-- LicenseApplyRenewal extends a renewed subscription's licence to the end of its current
-- period plus the policy's grace days (tessera_license_expiry), and makes an expired licence
-- active again. A licence without expiry (a perpetual add-on or fallback) keeps none; a
-- suspended or revoked licence keeps its status.
UPDATE licenses l
SET expires_at = CASE WHEN l.expires_at IS NULL THEN NULL
                      ELSE tessera_license_expiry(s.current_period_end, p.grace_period_days) END,
    status = CASE WHEN l.status = 'expired' THEN 'active'::license_status ELSE l.status END,
    status_changed_at = CASE WHEN l.status = 'expired' THEN sqlc.arg(now)::timestamptz ELSE l.status_changed_at END,
    updated_at = sqlc.arg(now)::timestamptz
FROM subscriptions s
JOIN policies p ON p.tenant_id = s.tenant_id AND p.id = s.policy_id
WHERE s.tenant_id = sqlc.arg(tenant_id)::uuid AND s.id = sqlc.arg(subscription_id)::uuid
  AND l.tenant_id = s.tenant_id AND l.id = s.license_id
RETURNING l.*;

-- name: SubscriptionLapseDueAllTenants :many
-- SubscriptionLapseDueAllTenants is the subscription.lapse_sweep, across all tenants: up to
-- @batch past_due subscriptions unpaid for longer than their policy's grace_period_days
-- since their unpaid cycle started (the current period's end), that is past their licence's
-- expiry (tessera_license_expiry), become lapsed; their licence then validates as EXPIRED.
-- Rows another sweep holds are skipped. Served by subscriptions_past_due_idx.
-- Live tenants only: a sandbox tenant's (clock_at set) run by its own clock, not this sweep's
-- (tenants primary key, probed per candidate row in index order).
UPDATE subscriptions s
SET status = 'lapsed', status_changed_at = sqlc.arg(now)::timestamptz, updated_at = sqlc.arg(now)::timestamptz
FROM (SELECT ps.tenant_id, ps.id FROM subscriptions ps
      JOIN policies p ON p.tenant_id = ps.tenant_id AND p.id = ps.policy_id
      WHERE ps.status = 'past_due' AND ps.current_period_end <= sqlc.arg(now)::timestamptz
        AND tessera_license_expiry(ps.current_period_end, p.grace_period_days) < sqlc.arg(now)::timestamptz
        AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = ps.tenant_id AND t.clock_at IS NOT NULL)
      ORDER BY ps.current_period_end
      LIMIT sqlc.arg(batch)::int
      FOR UPDATE OF ps SKIP LOCKED) due
WHERE s.tenant_id = due.tenant_id AND s.id = due.id AND s.status = 'past_due'
RETURNING s.*;

-- name: SubscriptionListStuck :many
-- SubscriptionListStuck pages through a tenant's subscriptions that the renewal sweep no
-- longer tries (active or past_due at the failure cap of 5), newest first
-- (subscriptions_stuck_idx).
SELECT * FROM subscriptions
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND status IN ('active', 'past_due') AND consecutive_failures >= 5
  AND (sqlc.narg(after)::uuid IS NULL OR id < sqlc.narg(after)::uuid)
ORDER BY id DESC
LIMIT sqlc.arg(row_limit)::int;

-- name: SubscriptionRenewalReset :one
-- SubscriptionRenewalReset puts a subscription stuck at the failure cap back in the renewal
-- sweep: failures 0, due at @now. No row means it does not exist for the tenant or is not
-- stuck.
UPDATE subscriptions
SET consecutive_failures = 0, next_renewal_at = sqlc.arg(now)::timestamptz, updated_at = sqlc.arg(now)::timestamptz
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid
  AND status IN ('active', 'past_due') AND consecutive_failures >= 5
RETURNING *;

-- name: SubscriptionCycles :many
-- SubscriptionCycles lists a subscription's renewal cycles in order (primary key).
SELECT * FROM subscription_cycles
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND subscription_id = sqlc.arg(subscription_id)::uuid
ORDER BY cycle_number;

-- name: SubscriptionRenewalByPayIn :one
-- SubscriptionRenewalByPayIn finds the subscription, its licence and the cycle a renewal
-- PayIn pays: the cycle it opened, or that the first PayIn of its retry chain (@genesis_id)
-- opened (subscription_cycles_payin_key; primary keys of subscriptions and licenses). No row
-- means the PayIn opened no cycle.
SELECT sqlc.embed(s), sqlc.embed(l), c.cycle_number, c.period_start, c.period_end
FROM subscription_cycles c
JOIN subscriptions s ON s.tenant_id = c.tenant_id AND s.id = c.subscription_id
JOIN licenses l ON l.tenant_id = s.tenant_id AND l.id = s.license_id
WHERE c.tenant_id = sqlc.arg(tenant_id)::uuid AND c.payin_id IN (sqlc.arg(payin_id)::uuid, sqlc.arg(genesis_id)::uuid)
LIMIT 1;

-- name: SubscriptionCycleRelease :one
-- SubscriptionCycleRelease removes the unpaid cycle that a renewal PayIn — or the first PayIn
-- of its retry chain (@genesis_id) — opened, if it is still its subscription's last cycle:
-- the provider could not invoice it, so nothing was offered to the buyer for it, and the
-- renewal opens it again with a new PayIn (subscription_cycles_payin_key). No row means the
-- PayIn holds no such cycle.
DELETE FROM subscription_cycles c
WHERE c.tenant_id = sqlc.arg(tenant_id)::uuid AND c.payin_id IN (sqlc.arg(payin_id)::uuid, sqlc.arg(genesis_id)::uuid)
  AND c.paid_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM subscription_cycles later
                  WHERE later.tenant_id = c.tenant_id AND later.subscription_id = c.subscription_id
                    AND later.cycle_number > c.cycle_number)
RETURNING c.subscription_id, c.cycle_number;
