-- name: TenantClockLock :one
-- TenantClockLock reads a tenant's clock (NULL: a live tenant) and locks it until the
-- transaction ends, so that advances of one clock start one after the other, each from where
-- the last one left it. FOR NO KEY UPDATE: rows inserted for the tenant meanwhile (their
-- foreign keys take key-share locks) do not wait for it (primary key).
SELECT clock_at FROM tenants WHERE id = sqlc.arg(id)::uuid FOR NO KEY UPDATE;

-- name: ClockAdvanceCreate :one
-- ClockAdvanceCreate starts advance @id of a sandbox tenant's clock from @from_at, where
-- the caller found it under TenantClockLock, to @to_at; a second advance while one runs
-- fails on clock_advances_running_key.
INSERT INTO clock_advances (tenant_id, id, from_at, to_at, clock_at, created_at)
VALUES (sqlc.arg(tenant_id)::uuid, sqlc.arg(id)::uuid, sqlc.arg(from_at)::timestamptz, sqlc.arg(to_at)::timestamptz,
        sqlc.arg(from_at)::timestamptz, sqlc.arg(now)::timestamptz)
RETURNING *;

-- name: ClockAdvanceGet :one
-- ClockAdvanceGet reads one advance (primary key).
SELECT * FROM clock_advances WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid;

-- name: ClockAdvanceLock :one
-- ClockAdvanceLock locks an advance for one run, and its tenant's row (the clock it moves;
-- FOR NO KEY UPDATE, as TenantClockLock), so runs of one advance happen one after the other
-- (primary keys).
SELECT a.* FROM clock_advances a
JOIN tenants t ON t.id = a.tenant_id
WHERE a.tenant_id = sqlc.arg(tenant_id)::uuid AND a.id = sqlc.arg(id)::uuid
FOR NO KEY UPDATE;

-- name: ClockAdvanceList :many
-- ClockAdvanceList pages through a tenant's advances, newest first (primary key).
SELECT * FROM clock_advances
WHERE tenant_id = sqlc.arg(tenant_id)::uuid
  AND (sqlc.narg(after)::uuid IS NULL OR id < sqlc.narg(after)::uuid)
ORDER BY id DESC
LIMIT sqlc.arg(row_limit)::int;

-- name: ClockAdvanceRecord :one
-- ClockAdvanceRecord adds one run's counts to an advance and records where its clock got;
-- @done ends it (succeeded, finished at @now, the clock at to_at).
UPDATE clock_advances
SET clock_at = sqlc.arg(clock_at)::timestamptz,
    instants = instants + sqlc.arg(instants)::int,
    renewals_started = renewals_started + sqlc.arg(renewals_started)::int,
    renewals_paid = renewals_paid + sqlc.arg(renewals_paid)::int,
    renewals_failed = renewals_failed + sqlc.arg(renewals_failed)::int,
    subscriptions_lapsed = subscriptions_lapsed + sqlc.arg(subscriptions_lapsed)::int,
    licenses_expired = licenses_expired + sqlc.arg(licenses_expired)::int,
    invoices_expired = invoices_expired + sqlc.arg(invoices_expired)::int,
    payins_paid = payins_paid + sqlc.arg(payins_paid)::int,
    payins_failed = payins_failed + sqlc.arg(payins_failed)::int,
    status = CASE WHEN sqlc.arg(done)::boolean THEN 'succeeded'::clock_advance_status ELSE status END,
    finished_at = CASE WHEN sqlc.arg(done)::boolean THEN sqlc.arg(now)::timestamptz END
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid
RETURNING *;

-- name: TenantClockMove :exec
-- TenantClockMove moves a sandbox tenant's clock to @clock_at (tenants_clock_guard refuses a
-- move backwards or of a live tenant's absent clock).
UPDATE tenants SET clock_at = sqlc.arg(clock_at)::timestamptz
WHERE id = sqlc.arg(id)::uuid AND clock_at IS NOT NULL;

-- name: ClockNextDue :many
-- ClockNextDue is, for each kind of thing that falls due for tenant @tenant_id, the first
-- instant one does, as the live sweeps decide it (no row: none ever will without a request):
--   - renewal: next_renewal_at of an active or past_due subscription below the failure cap
--     (SubscriptionListDueForTenant; subscriptions_tenant_due_idx);
--   - invoice_expiry: a sandbox invoice's expiry, for a PENDING PayIn
--     (PayInListExpiredForTenant; payin_invoices_sandbox_open_idx);
--   - lapse: the first instant a past_due subscription is past both its period's end and
--     its licence's expiry (SubscriptionLapseDueForTenant lapses it when expiry < now, so a
--     microsecond after): per policy, its grace days after the policy's earliest unpaid
--     period end, a monotonic rule, so one probe of subscriptions_tenant_policy_past_due_idx
--     per policy of the tenant;
--   - license_expiry: a licence's expiry (LicenseExpireDueForTenant; licenses_tenant_expiry_idx).
SELECT due.kind::text AS kind, due.at::timestamptz AS due_at
FROM (
    SELECT 'renewal' AS kind, (SELECT min(s.next_renewal_at) FROM subscriptions s
        WHERE s.tenant_id = sqlc.arg(tenant_id)::uuid AND s.status IN ('active', 'past_due') AND s.consecutive_failures < 5) AS at
    UNION ALL
    SELECT 'invoice_expiry', (SELECT min(i.expires_at) FROM payin_invoices i
        JOIN payins p ON p.tenant_id = i.tenant_id AND p.id = i.payin_id AND p.state = 'PENDING'
        WHERE i.tenant_id = sqlc.arg(tenant_id)::uuid AND i.provider = 'sandbox'
          AND i.settled_at IS NULL AND i.cancelled_at IS NULL AND i.invalidated_at IS NULL)
    UNION ALL
    SELECT 'lapse', (SELECT min(greatest(unpaid.period_end, tessera_license_expiry(unpaid.period_end, p.grace_period_days) + interval '1 microsecond'))
        FROM policies p
        CROSS JOIN LATERAL (SELECT min(s.current_period_end) AS period_end FROM subscriptions s
                            WHERE s.tenant_id = p.tenant_id AND s.policy_id = p.id AND s.status = 'past_due') unpaid
        WHERE p.tenant_id = sqlc.arg(tenant_id)::uuid)
    UNION ALL
    SELECT 'license_expiry', (SELECT min(l.expires_at) FROM licenses l
        WHERE l.tenant_id = sqlc.arg(tenant_id)::uuid AND l.status = 'active' AND l.expires_at IS NOT NULL)
) due
WHERE due.at IS NOT NULL;

-- name: SubscriptionListDueForTenant :many
-- SubscriptionListDueForTenant is SubscriptionListDueAllTenants for one sandbox tenant's
-- advance: up to @batch subscriptions of @tenant_id due at @now, oldest due first, each
-- with its price's currency and the cycle its renewal opens (subscriptions_tenant_due_idx).
SELECT s.tenant_id, s.id, s.price_currency,
       (coalesce((SELECT max(c.cycle_number) FROM subscription_cycles c
                  WHERE c.tenant_id = s.tenant_id AND c.subscription_id = s.id), 0) + 1)::int AS cycle_number
FROM subscriptions s
WHERE s.tenant_id = sqlc.arg(tenant_id)::uuid
  AND s.status IN ('active', 'past_due') AND s.consecutive_failures < 5
  AND s.next_renewal_at <= sqlc.arg(now)::timestamptz
ORDER BY s.next_renewal_at, s.id
LIMIT sqlc.arg(batch)::int;

-- name: SubscriptionLapseDueForTenant :many
-- SubscriptionLapseDueForTenant is SubscriptionLapseDueAllTenants for one sandbox tenant's
-- advance: up to @batch past_due subscriptions of @tenant_id unpaid beyond their licence's
-- expiry at @now become lapsed (subscriptions_tenant_policy_past_due_idx).
UPDATE subscriptions s
SET status = 'lapsed', status_changed_at = sqlc.arg(now)::timestamptz, updated_at = sqlc.arg(now)::timestamptz
FROM (SELECT ps.tenant_id, ps.id FROM subscriptions ps
      JOIN policies p ON p.tenant_id = ps.tenant_id AND p.id = ps.policy_id
      WHERE ps.tenant_id = sqlc.arg(tenant_id)::uuid
        AND ps.status = 'past_due' AND ps.current_period_end <= sqlc.arg(now)::timestamptz
        AND tessera_license_expiry(ps.current_period_end, p.grace_period_days) < sqlc.arg(now)::timestamptz
      ORDER BY ps.current_period_end, ps.id
      LIMIT sqlc.arg(batch)::int) due
WHERE s.tenant_id = due.tenant_id AND s.id = due.id
RETURNING s.*;

-- name: LicenseExpireDueForTenant :many
-- LicenseExpireDueForTenant is LicenseExpireDueAllTenants for one sandbox tenant's advance:
-- up to @batch active licences of @tenant_id whose expiry has passed at @now become expired
-- (licenses_tenant_expiry_idx).
UPDATE licenses l
SET status = 'expired', status_changed_at = sqlc.arg(now)::timestamptz, updated_at = sqlc.arg(now)::timestamptz
FROM (SELECT tenant_id, id FROM licenses
      WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND status = 'active' AND expires_at <= sqlc.arg(now)::timestamptz
      ORDER BY expires_at, id
      LIMIT sqlc.arg(batch)::int) due
WHERE l.tenant_id = due.tenant_id AND l.id = due.id
RETURNING l.*;

-- name: PayInListExpiredForTenant :many
-- PayInListExpiredForTenant lists, for one sandbox tenant's advance, up to @batch PENDING
-- PayIns of @tenant_id whose sandbox invoice expired unpaid at @now, first expired first
-- (payin_invoices_sandbox_open_idx).
SELECT i.* FROM payin_invoices i
JOIN payins p ON p.tenant_id = i.tenant_id AND p.id = i.payin_id AND p.state = 'PENDING'
WHERE i.tenant_id = sqlc.arg(tenant_id)::uuid AND i.provider = 'sandbox'
  AND i.settled_at IS NULL AND i.cancelled_at IS NULL AND i.invalidated_at IS NULL
  AND i.expires_at <= sqlc.arg(now)::timestamptz
ORDER BY i.expires_at, i.payin_id
LIMIT sqlc.arg(batch)::int;
