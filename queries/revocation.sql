-- name: UpstreamOwnerGet :one
-- UpstreamOwnerGet maps a store's user id to the tenant's customer (primary key).
SELECT customer_id FROM upstream_owners
WHERE tenant_id = @tenant_id::uuid AND store_id = @store_id::uuid AND external_owner_id = @external_owner_id::text;

-- name: UpstreamOwnerCreate :exec
-- UpstreamOwnerCreate records which customer a store's user id is.
INSERT INTO upstream_owners (tenant_id, store_id, external_owner_id, customer_id)
VALUES (@tenant_id::uuid, @store_id::uuid, @external_owner_id::text, @customer_id::uuid);

-- name: UpstreamOwnerCustomerByEmail :one
-- UpstreamOwnerCustomerByEmail finds the customer an imported owner's email names
-- (customers_email_key).
SELECT id FROM customers WHERE tenant_id = @tenant_id::uuid AND lower(email) = lower(@email::text);

-- name: UpstreamLicenseFind :one
-- UpstreamLicenseFind reads and locks an imported licence by its store id
-- (licenses_external_key) with its check state.
SELECT l.id, l.customer_id, ul.store_id, ul.acquired_at, ul.gone_at
FROM licenses l
JOIN upstream_licenses ul ON ul.tenant_id = l.tenant_id AND ul.license_id = l.id
WHERE l.tenant_id = @tenant_id::uuid AND l.external_license_id = @external_license_id::text
FOR UPDATE OF l, ul;

-- name: UpstreamLicenseExternalTaken :one
-- UpstreamLicenseExternalTaken says whether a licence with this external id exists but is
-- not an imported one with check state (licenses_external_key).
SELECT EXISTS (SELECT 1 FROM licenses WHERE tenant_id = @tenant_id::uuid AND external_license_id = @external_license_id::text);

-- name: LicenseImportCreate :one
-- LicenseImportCreate inserts an imported licence (origin external) of the store's policy,
-- active, with the policy's entitlements and machine limit. No row means another
-- transaction imported the same external id first (licenses_external_key).
INSERT INTO licenses (tenant_id, id, policy_id, customer_id, key, status, issued_at, entitlements, max_machines,
                      origin, external_license_id, status_changed_at, updated_at)
SELECT p.tenant_id, @id::uuid, p.id, @customer_id::uuid, @key::text, 'active', @acquired_at::timestamptz,
       p.entitlements, p.max_machines, 'external', @external_license_id::text,
       sqlc.arg(now)::timestamptz, sqlc.arg(now)::timestamptz
FROM policies p
WHERE p.tenant_id = @tenant_id::uuid AND p.id = @policy_id::uuid
ON CONFLICT (tenant_id, external_license_id) WHERE external_license_id IS NOT NULL DO NOTHING
RETURNING id;

-- name: UpstreamLicenseCreate :exec
-- UpstreamLicenseCreate starts the check state of an imported licence.
INSERT INTO upstream_licenses (tenant_id, license_id, store_id, customer_id, acquired_at, imported_at)
VALUES (@tenant_id::uuid, @license_id::uuid, @store_id::uuid, @customer_id::uuid, @acquired_at::timestamptz, sqlc.arg(now)::timestamptz);

-- name: UpstreamLicenseReown :exec
-- UpstreamLicenseReown applies a re-import that changed a licence's owner or acquisition
-- time, to the licence and its check state.
WITH l AS (
    UPDATE licenses SET customer_id = @customer_id::uuid, issued_at = @acquired_at::timestamptz, updated_at = sqlc.arg(now)::timestamptz
    WHERE tenant_id = @tenant_id::uuid AND id = @license_id::uuid
)
UPDATE upstream_licenses SET customer_id = @customer_id::uuid, acquired_at = @acquired_at::timestamptz
WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid;

-- name: UpstreamActivationsImport :execrows
-- UpstreamActivationsImport records an imported licence's activations as active machines,
-- skipping fingerprints already active (machines_active_fingerprint_key).
INSERT INTO machines (tenant_id, id, license_id, fingerprint, name, activated_at)
SELECT @tenant_id::uuid, a.id, @license_id::uuid, a.fingerprint, nullif(a.name, ''), a.activated_at
FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@fingerprints::text[]) AS fingerprint,
             unnest(@names::text[]) AS name, unnest(@activated_at::timestamptz[]) AS activated_at) AS a
ON CONFLICT (tenant_id, license_id, fingerprint) WHERE deactivated_at IS NULL DO NOTHING;

-- name: UpstreamOwnerStatsAdd :execrows
-- UpstreamOwnerStatsAdd adds deltas to an owner's aggregates: every import, re-import and
-- gone check calls it in its transaction, so the aggregates always equal the owner's
-- licences. last_revoked_at only moves forward. No row means the owner has none yet
-- (UpstreamOwnerStatsCreate).
UPDATE upstream_owner_stats
SET revoked_count       = revoked_count + @revoked_count::int,
    last_revoked_at     = greatest(last_revoked_at, sqlc.narg(revoked_at)::timestamptz),
    revoked_seconds     = revoked_seconds + @revoked_seconds::bigint,
    unrevoked_count     = unrevoked_count + @unrevoked_count::int,
    unrevoked_start_sum = unrevoked_start_sum + @unrevoked_start_sum::bigint
WHERE tenant_id = @tenant_id::uuid AND customer_id = @customer_id::uuid;

-- name: UpstreamOwnerStatsCreate :exec
-- UpstreamOwnerStatsCreate starts an owner's aggregates with their first licence; when a
-- concurrent transaction started them first, it adds to them.
INSERT INTO upstream_owner_stats AS s (tenant_id, customer_id, unrevoked_count, unrevoked_start_sum)
VALUES (@tenant_id::uuid, @customer_id::uuid, @unrevoked_count::int, @unrevoked_start_sum::bigint)
ON CONFLICT (tenant_id, customer_id) DO UPDATE
SET unrevoked_count     = s.unrevoked_count + excluded.unrevoked_count,
    unrevoked_start_sum = s.unrevoked_start_sum + excluded.unrevoked_start_sum;

-- name: RevocationPickSession :exec
-- RevocationPickSession turns JIT off until the end of the transaction of the check loop's
-- pick, or of the queue endpoint's read:
-- from about 10M pending licences the pick's estimated cost crosses jit_above_cost, and
-- compiling its plan took 60 ms of a 62 ms execution that needs 1.5 ms without it
-- (bench/README.md).
SELECT set_config('jit', 'off', true);

-- name: RevocationQueue :many
-- RevocationQueue decides which imported licences to check next (SPEC 5): the eligible ones,
-- by risk score, highest first, ties broken by tenant and licence id. The check job picks
-- its first row over all tenants (tenant_id NULL), live tenants only (a sandbox tenant's
-- checks come due by its own clock; tenants primary key); a sandbox tenant's checks pick
-- their tenant's first row at its clock; the queue endpoint lists a tenant's.
-- Eligible: not known gone; its store enabled and its tenant in scope with a log channel
-- (revocation_stores, migration 00034); not checked within
-- @min_interval_seconds; not held back by an error's backoff or an in-flight check.
-- The score is the sum of six terms, each weighted by revocation_weights (migration 00030,
-- revocation_terms):
--   term_revoked_count      +w * ln(1 + licences of the owner gone upstream)
--   term_recent_revocation  +w / (1 + days since the owner's last revocation), 0 if none
--   term_revoked_hours      +w * ln(1 + hours the owner held licences before they went)
--   term_owner_hours        -w * ln(1 + hours of the owner's other unrevoked licences)
--   term_license_age        -w * ln(1 + hours since this licence was acquired)
--   term_staleness          +w * hours since this licence's last check (or its import)
-- Owner terms come from upstream_owner_stats (maintained by imports and checks).
-- Exact without scoring every eligible licence (branch and bound): each pending licence
-- keeps priority_bound, with bound + w_staleness * hours(@now) >= its score at @now once
-- @now has reached the bound's priority_anchor (migration 00034, revocation_bound). The
-- query takes the @row_limit + 15 highest bounds of each enabled store
-- (upstream_licenses_priority_idx) and scores them; the @row_limit-th best of those scores
-- is a threshold no licence with a lower bound can reach, so it then scores exactly the
-- licences whose bound reaches it (one range of the same index), plus any anchored after
-- @now (upstream_licenses_anchor_idx, normally none), and ranks those. The threshold is
-- lowered by a billionth, so float rounding never drops a tie. How many it scores depends on
-- how tight the bounds are: the check loop re-anchors those it had to score
-- (RevocationBoundsTighten).
WITH pairs AS (
    SELECT rs.tenant_id, rs.store_id FROM revocation_stores rs
    WHERE (sqlc.narg(tenant_id)::uuid IS NULL AND rs.live) OR rs.tenant_id = sqlc.narg(tenant_id)::uuid
), due AS NOT MATERIALIZED (
    SELECT ul.tenant_id, ul.license_id, ul.store_id, ul.customer_id, ul.acquired_at, ul.last_checked_at,
           coalesce(ul.last_checked_at, ul.imported_at) AS stale_from, ul.priority_bound, ul.priority_anchor
    FROM upstream_licenses ul
    WHERE ul.gone_at IS NULL
      AND (ul.last_checked_at IS NULL
           OR ul.last_checked_at <= sqlc.arg(now)::timestamptz - make_interval(0, 0, 0, 0, 0, 0, sqlc.arg(min_interval_seconds)::float8))
      AND (ul.retry_after IS NULL OR ul.retry_after <= sqlc.arg(now)::timestamptz)
), probe AS (
    SELECT revocation_score(w, sqlc.arg(now)::timestamptz, s, d.acquired_at, d.stale_from) AS score
    FROM pairs p
    CROSS JOIN LATERAL (SELECT * FROM due WHERE due.tenant_id = p.tenant_id AND due.store_id = p.store_id
                        ORDER BY due.priority_bound DESC LIMIT (sqlc.arg(row_limit)::int + 15)) d
    CROSS JOIN revocation_weights w
    LEFT JOIN upstream_owner_stats s ON s.tenant_id = d.tenant_id AND s.customer_id = d.customer_id
), threshold AS (
    SELECT coalesce((SELECT score FROM probe ORDER BY score DESC OFFSET (sqlc.arg(row_limit)::int - 1) LIMIT 1), '-Infinity'::float8)
           - 1e-9 * (1 + abs(w.staleness * date_part('epoch', sqlc.arg(now)::timestamptz) / 3600))
           - w.staleness * date_part('epoch', sqlc.arg(now)::timestamptz) / 3600 AS bound
    FROM revocation_weights w
), candidates AS (
    -- The upper ends of the ranges change no row: they make the planner expect a narrow range
    -- of each index (its default for a range with an end it cannot see), not a third of the
    -- table.
    SELECT c.* FROM pairs p
    CROSS JOIN LATERAL (SELECT * FROM due WHERE due.tenant_id = p.tenant_id AND due.store_id = p.store_id
                          AND due.priority_bound >= (SELECT bound FROM threshold) AND due.priority_bound <= 'Infinity'::float8
                          AND due.priority_anchor <= sqlc.arg(now)::timestamptz
                        UNION ALL
                        SELECT * FROM due WHERE due.tenant_id = p.tenant_id AND due.store_id = p.store_id
                          AND due.priority_anchor > sqlc.arg(now)::timestamptz AND due.priority_anchor <= 'infinity'::timestamptz) c
), ranked AS (
    SELECT c.tenant_id, c.license_id, c.store_id, c.customer_id, c.acquired_at, c.last_checked_at,
           revocation_terms(w, sqlc.arg(now)::timestamptz, s::upstream_owner_stats, c.acquired_at, c.stale_from) AS terms,
           revocation_score(w, sqlc.arg(now)::timestamptz, s::upstream_owner_stats, c.acquired_at, c.stale_from) AS score
    FROM candidates c
    CROSS JOIN revocation_weights w
    -- One probe of the aggregates' primary key per candidate (LIMIT keeps the planner from
    -- hashing every owner's).
    LEFT JOIN LATERAL (SELECT * FROM upstream_owner_stats s
                       WHERE s.tenant_id = c.tenant_id AND s.customer_id = c.customer_id LIMIT 1) s ON true
    ORDER BY score DESC, c.tenant_id, c.license_id
    LIMIT sqlc.arg(row_limit)::int
)
SELECT r.tenant_id, r.license_id, r.store_id, r.customer_id, l.external_license_id::text AS external_license_id,
       r.acquired_at, r.last_checked_at,
       r.terms[1]::float8 AS term_revoked_count, r.terms[2]::float8 AS term_recent_revocation,
       r.terms[3]::float8 AS term_revoked_hours, r.terms[4]::float8 AS term_owner_hours,
       r.terms[5]::float8 AS term_license_age, r.terms[6]::float8 AS term_staleness, r.score::float8 AS score
FROM ranked r
JOIN licenses l ON l.tenant_id = r.tenant_id AND l.id = r.license_id
ORDER BY r.score DESC, r.tenant_id, r.license_id;

-- name: RevocationBoundsTighten :execrows
-- RevocationBoundsTighten re-anchors at @now the bounds a pick had to re-score: the eligible
-- licences of the pick's scope (RevocationQueue's, revocation_stores) whose bound reaches
-- @score, the score of the last row the pick read, and that are anchored before @now
-- (upstream_licenses_priority_idx). A bound anchored at @now is
-- tight then, so the next picks re-score only the licences whose bound can still beat the
-- best, a count that no longer grows with the data set. It only tightens bounds (each still
-- valid from its anchor on), so it skips what it cannot lock at once: a licence being
-- checked or re-imported, an owner whose aggregates are changing (their triggers recompute
-- the bounds), weights being set; it locks the aggregates and weights it computes from, so
-- a change committed meanwhile is read, not overwritten.
WITH w AS MATERIALIZED (
    SELECT * FROM revocation_weights FOR SHARE SKIP LOCKED
), fresh AS (
    SELECT ul.tenant_id, ul.license_id,
           revocation_bound(w::revocation_weights, s::upstream_owner_stats, ul.acquired_at,
                            coalesce(ul.last_checked_at, ul.imported_at), sqlc.arg(now)::timestamptz) AS bound
    FROM w
    CROSS JOIN revocation_stores p
    JOIN upstream_licenses ul ON ul.tenant_id = p.tenant_id AND ul.store_id = p.store_id
    -- One probe of the aggregates' primary key per licence (LIMIT keeps the planner from
    -- hashing every owner's).
    CROSS JOIN LATERAL (SELECT * FROM upstream_owner_stats s
                        WHERE s.tenant_id = ul.tenant_id AND s.customer_id = ul.customer_id
                        LIMIT 1 FOR SHARE SKIP LOCKED) s
    WHERE ((sqlc.narg(tenant_id)::uuid IS NULL AND p.live) OR p.tenant_id = sqlc.narg(tenant_id)::uuid)
      AND ul.gone_at IS NULL
      AND (ul.last_checked_at IS NULL
           OR ul.last_checked_at <= sqlc.arg(now)::timestamptz - make_interval(0, 0, 0, 0, 0, 0, sqlc.arg(min_interval_seconds)::float8))
      AND (ul.retry_after IS NULL OR ul.retry_after <= sqlc.arg(now)::timestamptz)
      AND ul.priority_bound >= (SELECT sqlc.arg(score)::float8 - ww.staleness * date_part('epoch', sqlc.arg(now)::timestamptz) / 3600
                                FROM w ww)
      AND ul.priority_bound <= 'Infinity'::float8
      AND ul.priority_anchor < sqlc.arg(now)::timestamptz
    FOR NO KEY UPDATE OF ul SKIP LOCKED
)
UPDATE upstream_licenses ul
SET priority_bound = fresh.bound, priority_anchor = sqlc.arg(now)::timestamptz
FROM fresh
WHERE ul.tenant_id = fresh.tenant_id AND ul.license_id = fresh.license_id;

-- name: RevocationWeightsSet :exec
-- RevocationWeightsSet makes @weights the risk score's weights (revocation_weights), as a
-- process starts with its configuration. Changed weights recompute every pending licence's
-- bound (revocation_weights_bounds), one pass over them; unchanged ones write nothing.
UPDATE revocation_weights
SET revoked_count = @revoked_count::float8, recent_revocation = @recent_revocation::float8,
    revoked_hours = @revoked_hours::float8, owner_hours = @owner_hours::float8,
    license_age = @license_age::float8, staleness = @staleness::float8
WHERE (revoked_count, recent_revocation, revoked_hours, owner_hours, license_age, staleness)
      IS DISTINCT FROM (@revoked_count::float8, @recent_revocation::float8, @revoked_hours::float8,
                        @owner_hours::float8, @license_age::float8, @staleness::float8);

-- name: RevocationLimiterAcquire :execrows
-- RevocationLimiterAcquire takes the global permit of one revocation.check firing: if
-- next_allowed_at has been reached, it moves it to the start of the next window of
-- @interval_seconds (windows aligned on 2000-01-01 UTC), so that firings scheduled every
-- interval each find their window free even when one ran a little late. One row for all
-- processes: at most one firing per window happens anywhere; 0 rows means another firing
-- holds this window.
UPDATE revocation_limiter
SET next_allowed_at = date_bin(make_interval(0, 0, 0, 0, 0, 0, sqlc.arg(interval_seconds)::float8), sqlc.arg(now)::timestamptz,
                               '2000-01-01 00:00:00+00'::timestamptz)
                      + make_interval(0, 0, 0, 0, 0, 0, sqlc.arg(interval_seconds)::float8)
WHERE id AND next_allowed_at <= sqlc.arg(now)::timestamptz;

-- name: UpstreamLicenseClaimAllTenants :execrows
-- UpstreamLicenseClaimAllTenants leases a picked licence for one check (retry_after moves
-- @lease_seconds ahead) if it is still eligible, so no other worker checks it meanwhile.
-- A sandbox tenant's licence is never claimed by the live check (tenants primary key): its
-- checks come due by its own clock.
UPDATE upstream_licenses
SET retry_after = sqlc.arg(now)::timestamptz + make_interval(0, 0, 0, 0, 0, 0, sqlc.arg(lease_seconds)::float8)
WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid AND gone_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = @tenant_id::uuid AND t.clock_at IS NOT NULL)
  AND (retry_after IS NULL OR retry_after <= sqlc.arg(now)::timestamptz)
  AND (last_checked_at IS NULL
       OR last_checked_at <= sqlc.arg(now)::timestamptz - make_interval(0, 0, 0, 0, 0, 0, sqlc.arg(min_interval_seconds)::float8));

-- name: UpstreamLicenseClaimForTenant :execrows
-- UpstreamLicenseClaimForTenant is UpstreamLicenseClaimAllTenants for one sandbox tenant's
-- checks, at its clock (@now): it leases a picked licence of sandbox tenant @tenant_id if it
-- is still eligible. A live tenant's licence is never claimed here (tenants primary key): the
-- live check claims it, under the global rate limit.
UPDATE upstream_licenses
SET retry_after = sqlc.arg(now)::timestamptz + make_interval(0, 0, 0, 0, 0, 0, sqlc.arg(lease_seconds)::float8)
WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid AND gone_at IS NULL
  AND EXISTS (SELECT 1 FROM tenants t WHERE t.id = @tenant_id::uuid AND t.clock_at IS NOT NULL)
  AND (retry_after IS NULL OR retry_after <= sqlc.arg(now)::timestamptz)
  AND (last_checked_at IS NULL
       OR last_checked_at <= sqlc.arg(now)::timestamptz - make_interval(0, 0, 0, 0, 0, 0, sqlc.arg(min_interval_seconds)::float8));

-- name: UpstreamLicensePendingExists :one
-- UpstreamLicensePendingExists says whether tenant @tenant_id has an imported licence not
-- known gone, which a check may come due for (upstream_licenses_pending_idx).
SELECT EXISTS (SELECT 1 FROM upstream_licenses WHERE tenant_id = @tenant_id::uuid AND gone_at IS NULL);

-- name: UpstreamLicenseForCheck :one
-- UpstreamLicenseForCheck reads what a check needs: the licence's external id and owner, and
-- its store's address, sealed key and revoke choice (primary keys).
SELECT ul.tenant_id, ul.license_id, ul.store_id, ul.customer_id, ul.acquired_at, ul.gone_at,
       l.external_license_id::text AS external_license_id,
       st.base_url, st.api_key_sealed, st.revoke_on_gone, st.enabled AS store_enabled
FROM upstream_licenses ul
JOIN licenses l ON l.tenant_id = ul.tenant_id AND l.id = ul.license_id
JOIN upstream_stores st ON st.tenant_id = ul.tenant_id AND st.id = ul.store_id
WHERE ul.tenant_id = @tenant_id::uuid AND ul.license_id = @license_id::uuid;

-- name: UpstreamCheckCreate :exec
-- UpstreamCheckCreate records one check of a licence.
INSERT INTO upstream_license_checks (tenant_id, id, license_id, store_id, checked_at, outcome, upstream_status, error)
VALUES (@tenant_id::uuid, @id::uuid, @license_id::uuid, @store_id::uuid, sqlc.arg(now)::timestamptz,
        @outcome::upstream_check_outcome, sqlc.narg(upstream_status)::int, sqlc.narg(error)::text);

-- name: UpstreamLicenseMarkExists :exec
-- UpstreamLicenseMarkExists records an answered check that found the licence: it is not
-- eligible again for the minimum interval.
UPDATE upstream_licenses
SET last_checked_at = sqlc.arg(now)::timestamptz, retry_after = NULL, check_errors = 0
WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid AND gone_at IS NULL;

-- name: UpstreamOwnerStatsLock :one
-- UpstreamOwnerStatsLock locks the aggregates of the owner of a licence not known gone
-- (primary keys) and returns the owner; no row means the licence is gone (or does not
-- exist). Every transaction that changes both an owner's aggregates and their licences'
-- check state locks the aggregates first: a change of the aggregates updates the bounds of
-- the owner's licences (upstream_owner_stats_bounds), so the opposite order could deadlock
-- with an import or a check of the same owner.
SELECT s.customer_id
FROM upstream_licenses ul
JOIN upstream_owner_stats s ON s.tenant_id = ul.tenant_id AND s.customer_id = ul.customer_id
WHERE ul.tenant_id = @tenant_id::uuid AND ul.license_id = @license_id::uuid AND ul.gone_at IS NULL
FOR NO KEY UPDATE OF s;

-- name: UpstreamLicenseMarkGone :one
-- UpstreamLicenseMarkGone records that the store no longer knows the licence, once, if it
-- still belongs to @customer_id (whose aggregates the caller locked, UpstreamOwnerStatsLock):
-- no row means it was already known gone (or does not exist) or has just been re-owned.
UPDATE upstream_licenses
SET gone_at = sqlc.arg(now)::timestamptz, last_checked_at = sqlc.arg(now)::timestamptz, retry_after = NULL
WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid AND gone_at IS NULL
  AND customer_id = @customer_id::uuid
RETURNING *;

-- name: UpstreamLicenseMarkError :exec
-- UpstreamLicenseMarkError records a check without an answer (5xx, timeout, ...): the
-- licence is held back only for @backoff_seconds, and its last answered check is kept.
UPDATE upstream_licenses
SET retry_after = sqlc.arg(now)::timestamptz + make_interval(0, 0, 0, 0, 0, 0, sqlc.arg(backoff_seconds)::float8),
    check_errors = check_errors + 1
WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid AND gone_at IS NULL;

-- name: UpstreamCheckList :many
-- UpstreamCheckList pages through a licence's checks, newest first
-- (upstream_license_checks_license_idx).
SELECT * FROM upstream_license_checks
WHERE tenant_id = @tenant_id::uuid AND license_id = @license_id::uuid
  AND (sqlc.narg(after)::uuid IS NULL OR id < sqlc.narg(after)::uuid)
ORDER BY id DESC
LIMIT @row_limit::int;
