-- name: AddonListApplicable :many
-- AddonListApplicable returns those of the given add-ons that are live and apply to a
-- policy: add-ons without allowed_ids, or whose allowed_ids name the policy's slug.
SELECT a.* FROM addons a
JOIN policies p ON p.tenant_id = a.tenant_id AND p.id = @policy_id::uuid
WHERE a.tenant_id = @tenant_id::uuid
  AND a.id = ANY(@ids::uuid[])
  AND a.archived_at IS NULL
  AND (a.metadata -> 'allowed_ids' IS NULL OR a.metadata -> 'allowed_ids' @> to_jsonb(p.slug))
ORDER BY a.id;

-- name: LicenseIssue :one
-- LicenseIssue issues a licence of a live policy to a customer of the same tenant, with the
-- given (already checked applicable) add-ons:
--   - entitlements: the policy's plus the add-ons' features, sorted, without duplicates;
--   - max_machines: the policy's;
--   - expires_at: the override when given; otherwise none when a perpetual add-on is among
--     the add-ons (SPEC 2.4: its expiry is lifted from the start); otherwise, for a recurring
--     policy, the end of its first period (@now plus period_days) plus the grace days
--     (tessera_license_expiry); otherwise none (a perpetual purchase).
-- With @payin_id, the licence purchase it fulfils, the same statement records the licence on
-- that PayIn (payins.license_id; its primary key), one round trip instead of two.
-- No row means the policy (live) or the customer does not exist for the tenant.
WITH issued AS (
INSERT INTO licenses (tenant_id, id, policy_id, customer_id, key, status, issued_at, expires_at,
                      entitlements, max_machines, status_changed_at, updated_at)
SELECT p.tenant_id, @id::uuid AS id, p.id AS policy_id, c.id AS customer_id, @key::text AS key,
       'active'::license_status AS status, sqlc.arg(now)::timestamptz AS issued_at,
       CASE
           WHEN sqlc.narg(expires_at)::timestamptz IS NOT NULL THEN sqlc.narg(expires_at)::timestamptz
           WHEN EXISTS (SELECT 1 FROM addons a
                        WHERE a.tenant_id = p.tenant_id AND a.id = ANY(@addon_ids::uuid[])
                          AND a.metadata @> '{"perpetual": true}') THEN NULL
           WHEN p.is_recurring THEN tessera_license_expiry(sqlc.arg(now)::timestamptz + make_interval(0, 0, 0, p.period_days), p.grace_period_days)
       END AS expires_at,
       ARRAY(SELECT DISTINCT f FROM (
                 SELECT unnest(p.entitlements) AS f
                 UNION
                 SELECT jsonb_array_elements_text(a.metadata -> 'features')
                 FROM addons a
                 WHERE a.tenant_id = p.tenant_id AND a.id = ANY(@addon_ids::uuid[])
                   AND jsonb_typeof(a.metadata -> 'features') = 'array') AS e
             ORDER BY f)::text[] AS entitlements,
       p.max_machines, sqlc.arg(now)::timestamptz AS status_changed_at, sqlc.arg(now)::timestamptz AS updated_at
FROM policies p
JOIN customers c ON c.tenant_id = p.tenant_id AND c.id = @customer_id::uuid
WHERE p.tenant_id = @tenant_id::uuid AND p.id = @policy_id::uuid AND p.archived_at IS NULL
RETURNING *
), fulfilled AS (
    UPDATE payins SET license_id = issued.id, updated_at = sqlc.arg(now)::timestamptz
    FROM issued
    WHERE payins.tenant_id = issued.tenant_id AND payins.id = sqlc.narg(payin_id)::uuid
)
SELECT * FROM issued;

-- name: LicenseAddonsAttach :exec
-- LicenseAddonsAttach records the add-ons a licence was issued with.
INSERT INTO license_addons (tenant_id, license_id, addon_id)
SELECT @tenant_id::uuid, @license_id::uuid, unnest(@addon_ids::uuid[]);

-- name: LicenseGet :one
-- LicenseGet reads one of a tenant's licences (primary key).
SELECT * FROM licenses WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid;

-- name: LicenseGetForUpdate :one
-- LicenseGetForUpdate reads and locks a licence: machine activations take this lock first,
-- so that their count-then-insert runs one at a time per licence.
SELECT * FROM licenses WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid FOR UPDATE;

-- name: LicenseList :many
-- LicenseList pages through a tenant's licences, newest first, optionally filtered by
-- status, policy and customer (licenses_status_idx, licenses_policy_idx,
-- licenses_customer_idx).
SELECT * FROM licenses
WHERE tenant_id = @tenant_id::uuid
  AND (sqlc.narg(status)::license_status IS NULL OR status = sqlc.narg(status)::license_status)
  AND (sqlc.narg(policy_id)::uuid IS NULL OR policy_id = sqlc.narg(policy_id)::uuid)
  AND (sqlc.narg(customer_id)::uuid IS NULL OR customer_id = sqlc.narg(customer_id)::uuid)
  AND (sqlc.narg(after)::uuid IS NULL OR id < sqlc.narg(after)::uuid)
ORDER BY id DESC
LIMIT @row_limit::int;

-- name: LicenseAddonIDs :many
-- LicenseAddonIDs lists the add-ons a licence was issued with.
SELECT addon_id FROM license_addons
WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid
ORDER BY addon_id;

-- name: LicenseTransition :one
-- LicenseTransition moves a licence to status @to if and only if its status is one of
-- @from_statuses (core.LicenseTransitions names the allowed moves). No row means the
-- licence does not exist or its status does not allow the move.
UPDATE licenses
SET status = @to_status::license_status, status_changed_at = sqlc.arg(now)::timestamptz, updated_at = sqlc.arg(now)::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid AND status::text = ANY(@from_statuses::text[])
RETURNING *;

-- name: LicenseExpireDueAllTenants :many
-- LicenseExpireDueAllTenants marks expired, across all tenants, up to a batch of active
-- licences whose expiry has passed (the license.expire_sweep job). Served by
-- licenses_expiry_idx.
-- Live tenants only: a sandbox tenant's (clock_at set) run by its own clock, not this sweep's
-- (tenants primary key, probed per candidate row in index order).
UPDATE licenses l
SET status = 'expired', status_changed_at = sqlc.arg(now)::timestamptz, updated_at = sqlc.arg(now)::timestamptz
FROM (SELECT tenant_id, id FROM licenses
      WHERE status = 'active' AND expires_at <= sqlc.arg(now)::timestamptz
        AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = licenses.tenant_id AND t.clock_at IS NOT NULL)
      ORDER BY expires_at
      LIMIT @batch::int
      FOR UPDATE SKIP LOCKED) due
WHERE l.tenant_id = due.tenant_id AND l.id = due.id
RETURNING l.*;

-- name: LicenseValidate :one
-- LicenseValidate decides a validation (SPEC 2.3) in one read of one licence, by primary
-- key, with its policy, its subscription (subscriptions_license_key), the release asked
-- about (product_releases_version_key) and its active machines
-- (machines_active_fingerprint_key). The first rule that applies gives the code:
--   REVOKED, SUSPENDED;
--   EXPIRED: the licence is expired, its expiry has passed, or its subscription lapsed;
--   UNKNOWN_RELEASE: a release version was given, the licence is capped at a subscription
--     expiration date, and the product has no such release;
--   BUILD_NOT_COVERED: the build date or the release's date is after the licence's
--     subscription_expiration_date (perpetual fallback, SPEC 2.4);
--   TOO_MANY_MACHINES: more machines are active than the licence allows,
--     effective_max_machines (license_machine_limits: max_machines plus the customer's
--     stored referral bonus; NULL is unlimited);
--   FINGERPRINT_MISMATCH: a fingerprint was given and is not an active machine;
--   ENTITLEMENT_MISSING: an entitlement was given and the licence lacks it;
--   VALID otherwise.
-- Time is the licence's tenant's (tenants primary key): a sandbox tenant's clock, else @now;
-- sandbox says which, for the caller to check the key's marker against. It returns only the
-- columns a validation answers with (and the key, for the caller to compare): every column
-- read is decoded on each of the busiest endpoint's calls.
SELECT l.id, l.policy_id, l.customer_id, l.key, l.status, l.expires_at, l.subscription_expiration_date,
       l.message, l.entitlements,
       (t.clock_at IS NOT NULL)::bool AS sandbox,
       p.slug AS policy_slug,
       s.status AS subscription_status,
       m.active_machines,
       coalesce(rr.bonus_units, 0)::int AS referral_bonus_units,
       ml.max_machines AS effective_max_machines,
       (CASE
           WHEN l.status = 'revoked' THEN 'REVOKED'
           WHEN l.status = 'suspended' THEN 'SUSPENDED'
           WHEN l.status = 'expired' OR l.expires_at <= coalesce(t.clock_at, sqlc.arg(now)::timestamptz) OR s.status = 'lapsed' THEN 'EXPIRED'
           WHEN l.subscription_expiration_date IS NOT NULL AND sqlc.narg(version)::text IS NOT NULL
                AND r.released_at IS NULL THEN 'UNKNOWN_RELEASE'
           WHEN l.subscription_expiration_date < sqlc.narg(build_date)::timestamptz
                OR l.subscription_expiration_date < r.released_at THEN 'BUILD_NOT_COVERED'
           WHEN m.active_machines > ml.max_machines THEN 'TOO_MANY_MACHINES'
           WHEN sqlc.narg(fingerprint)::text IS NOT NULL AND NOT m.fingerprint_active THEN 'FINGERPRINT_MISMATCH'
           WHEN sqlc.narg(entitlement)::text IS NOT NULL
                AND NOT sqlc.narg(entitlement)::text = ANY(l.entitlements) THEN 'ENTITLEMENT_MISSING'
           ELSE 'VALID'
       END)::text AS code
FROM licenses l
JOIN tenants t ON t.id = l.tenant_id
JOIN policies p ON p.tenant_id = l.tenant_id AND p.id = l.policy_id
LEFT JOIN subscriptions s ON s.tenant_id = l.tenant_id AND s.license_id = l.id
LEFT JOIN referral_rewards rr ON rr.tenant_id = l.tenant_id AND rr.customer_id = l.customer_id
LEFT JOIN license_machine_limits ml ON ml.tenant_id = l.tenant_id AND ml.license_id = l.id
LEFT JOIN product_releases r ON r.tenant_id = l.tenant_id AND r.product_id = p.product_id
                            AND r.version = sqlc.narg(version)::text
CROSS JOIN LATERAL (
    SELECT count(*)::int AS active_machines,
           coalesce(bool_or(mm.fingerprint = sqlc.narg(fingerprint)::text), false) AS fingerprint_active
    FROM machines mm
    WHERE mm.tenant_id = l.tenant_id AND mm.license_id = l.id AND mm.deactivated_at IS NULL) m
WHERE l.tenant_id = @tenant_id::uuid AND l.id = @license_id::uuid;

-- name: LicenseKeyList :many
-- LicenseKeyList reads the id and key of every licence of a tenant (primary key), for a
-- clone of a sandbox tenant to re-sign them.
SELECT id, key FROM licenses WHERE tenant_id = @tenant_id::uuid ORDER BY id;
