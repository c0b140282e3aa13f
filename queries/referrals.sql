-- name: ReferralSettingsGet :one
-- ReferralSettingsGet reads a tenant's referral settings, the defaults where it never set
-- them (referral_settings_effective; tenants primary key). No row means no such tenant.
SELECT * FROM referral_settings_effective WHERE tenant_id = @tenant_id::uuid;

-- name: ReferralSettingsPut :one
-- ReferralSettingsPut stores all of a tenant's referral settings (primary key). The CHECKs
-- of referral_settings refuse values out of range.
INSERT INTO referral_settings (tenant_id, batch_size, bonus_per_batch, verified_badge_at, elite_badge_at,
                               cooldown_days, ip_window_days, require_ip_hash, updated_at)
VALUES (@tenant_id::uuid, @batch_size::int, @bonus_per_batch::int, @verified_badge_at::int, @elite_badge_at::int,
        @cooldown_days::int, @ip_window_days::int, @require_ip_hash::bool, @now::timestamptz)
ON CONFLICT (tenant_id) DO UPDATE
SET batch_size = excluded.batch_size, bonus_per_batch = excluded.bonus_per_batch,
    verified_badge_at = excluded.verified_badge_at, elite_badge_at = excluded.elite_badge_at,
    cooldown_days = excluded.cooldown_days, ip_window_days = excluded.ip_window_days,
    require_ip_hash = excluded.require_ip_hash, updated_at = excluded.updated_at
RETURNING *;

-- name: ReferralCompute :many
-- ReferralCompute decides every referral of a tenant's referrers (SPEC 6), or of the
-- referrers referrer_ids names, without storing anything: referral_compute (migration 00033,
-- where the rules are written down), as ReferralRecomputeStore stores it. Read-only, so it
-- also runs on a replica (the API's live snapshot of one referrer).
--
-- The result has at least one row: processed (referrers in scope: those with referrals and
-- those with a stored reward) on each, and the referrer columns of every referrer in scope,
-- or with changed_only of those whose computed values differ from their stored reward or
-- that have none; previous_* and stored_computed_at are the stored reward's
-- (stored_computed_at NULL: none). Other columns are NULL on the one row of an empty result.
WITH rewarded AS MATERIALIZED (
    SELECT f.referrer_id::uuid AS referrer_id, f.referred_total::int AS referred_total, f.qualified_total::int AS qualified_total,
           f.disqualified_cooldown::int AS disqualified_cooldown, f.disqualified_missing_ip::int AS disqualified_missing_ip,
           f.disqualified_shared_ip::int AS disqualified_shared_ip, f.disqualified_duplicate_ip::int AS disqualified_duplicate_ip,
           f.bonus_units::int AS bonus_units, f.badge::referral_badge AS badge, f.was_stored::boolean AS was_stored,
           f.previous_bonus_units::int AS previous_bonus_units, f.previous_badge::referral_badge AS previous_badge,
           f.stored_computed_at::timestamptz AS stored_computed_at, f.changed::boolean AS changed,
           f.reward_changed::boolean AS reward_changed
    FROM referral_compute(@tenant_id::uuid, sqlc.arg(now)::timestamptz, sqlc.narg(referrer_ids)::uuid[]) f
)
SELECT t.processed,
       rd.referrer_id, rd.referred_total, rd.qualified_total, rd.disqualified_cooldown, rd.disqualified_missing_ip,
       rd.disqualified_shared_ip, rd.disqualified_duplicate_ip, rd.bonus_units, rd.badge,
       rd.previous_bonus_units, rd.previous_badge, rd.stored_computed_at
FROM (SELECT count(*)::int AS processed FROM rewarded) t
LEFT JOIN rewarded rd ON NOT @changed_only::bool OR rd.changed
ORDER BY rd.referrer_id;

-- name: ReferralRecomputeStore :one
-- ReferralRecomputeStore recomputes a tenant's referral rewards, of all its referrers or of
-- those referrer_ids names, and stores them at @now inside the database
-- (referral_recompute_store, migrations 00033 and 00039: all referrers computed with parallel
-- workers, planned with nested loops off for that computation only),
-- writing only the rewards whose values changed or that were not stored and marking, for
-- ReferralRewardsAnnounce, those whose bonus or badge changed. It returns processed
-- (referrers in scope), updated (rewards written) and rewards_changed (rewards marked). The
-- caller holds the referrers' locks (ReferralRewardsLock).
SELECT r.processed::int AS processed, r.updated::int AS updated, r.rewards_changed::int AS rewards_changed
FROM referral_recompute_store(@tenant_id::uuid, sqlc.arg(now)::timestamptz, sqlc.narg(referrer_ids)::uuid[]) r;

-- name: ReferralRewardsAnnounce :many
-- ReferralRewardsAnnounce hands out up to row_limit of a tenant's rewards marked by
-- ReferralRecomputeStore (referral_rewards_announce_idx), the first by referrer, with the
-- bonus and badge they replaced, and clears their mark: a recompute takes them page after
-- page until none is left, in its own transaction.
WITH picked AS (
    SELECT a.customer_id, a.announce_previous_bonus, a.announce_previous_badge
    FROM referral_rewards a
    WHERE a.tenant_id = @tenant_id::uuid AND a.announce
    ORDER BY a.customer_id
    LIMIT @row_limit::int
), cleared AS (
    UPDATE referral_rewards rw
    SET announce = false, announce_previous_bonus = NULL, announce_previous_badge = NULL
    FROM picked p
    WHERE rw.tenant_id = @tenant_id::uuid AND rw.customer_id = p.customer_id
    RETURNING rw.customer_id, rw.qualified_total, rw.bonus_units, rw.badge
)
SELECT c.customer_id, c.qualified_total, c.bonus_units, c.badge,
       p.announce_previous_bonus::int AS previous_bonus_units, p.announce_previous_badge AS previous_badge
FROM cleared c
JOIN picked p ON p.customer_id = c.customer_id
ORDER BY c.customer_id;

-- name: ReferralRewardsLock :exec
-- ReferralRewardsLock serialises, until the transaction ends, the recomputes of a tenant's
-- rewards (advisory locks, taken in one order so that two recomputes cannot deadlock on
-- them): with referrer_ids NULL, the tenant's lock in exclusive mode (a full recompute);
-- otherwise the tenant's lock shared, then each referrer's lock in uuid order. A recompute
-- holding them computes from every change committed before it and stores before any later
-- recompute of the same referrers computes, so maintenance in the transactions of
-- concurrent changes never stores a count that misses one of them.
SELECT count(*) FROM (
    SELECT CASE WHEN k.exclusive THEN pg_advisory_xact_lock(k.key) ELSE pg_advisory_xact_lock_shared(k.key) END
    FROM (
        SELECT 0 AS ord, sqlc.narg(referrer_ids)::uuid[] IS NULL AS exclusive, NULL::uuid AS referrer_id,
               hashtextextended('referral-rewards:' || CAST(@tenant_id::uuid AS text), 0) AS key
        UNION ALL
        SELECT 1, true, r.id, hashtextextended('referral-rewards:' || CAST(@tenant_id::uuid AS text) || '/' || CAST(r.id AS text), 0)
        FROM unnest(sqlc.narg(referrer_ids)::uuid[]) AS r (id)
        ORDER BY 1, 3
    ) k
) locked;

-- name: ReferralRewardGet :one
-- ReferralRewardGet reads a referrer's stored reward (primary key); no row means none.
SELECT * FROM referral_rewards WHERE tenant_id = @tenant_id::uuid AND customer_id = @customer_id::uuid;

-- name: ReferralLeaderboard :many
-- ReferralLeaderboard pages through a tenant's referrers with at least one qualified
-- referral, most qualified first (ties by customer id), from the stored rewards, after the
-- cursor referrer. Served by referral_rewards_leaderboard_idx (partial: qualified_total > 0).
SELECT rw.*, c.email
FROM referral_rewards rw
JOIN customers c ON c.tenant_id = rw.tenant_id AND c.id = rw.customer_id
WHERE rw.tenant_id = @tenant_id::uuid AND rw.qualified_total > 0
  AND (sqlc.narg(after)::uuid IS NULL OR (-rw.qualified_total, rw.customer_id) > (
        SELECT -a.qualified_total, a.customer_id FROM referral_rewards a
        WHERE a.tenant_id = @tenant_id::uuid AND a.customer_id = sqlc.narg(after)::uuid))
ORDER BY rw.qualified_total DESC, rw.customer_id
LIMIT @row_limit::int;

-- name: ReferralTenantIDs :many
-- ReferralTenantIDs lists every tenant (a sweep across all tenants): the periodic full
-- recompute enqueues one recompute per tenant.
SELECT id FROM tenants ORDER BY id;

-- name: ReferralReferrersOf :many
-- ReferralReferrersOf returns, once each, who referred the customers customer_ids (primary
-- key), leaving out those nobody referred: a change to a customer may move its referrer's
-- count.
SELECT DISTINCT c.referred_by::uuid AS referrer_id
FROM customers c
WHERE c.tenant_id = @tenant_id::uuid AND c.id = ANY(@customer_ids::uuid[]) AND c.referred_by IS NOT NULL
ORDER BY 1;

-- name: ReferralReferrersMovedByEvents :many
-- ReferralReferrersMovedByEvents lists, once each, the referrers whose count the tenant's
-- events event_ids (just recorded) may move: the referrer of a customer whose event is a
-- `registered` one with an IP hash (it may change that customer's IP hash), and the
-- customer itself when it has referrals and the event carries an IP hash inside the IP
-- window [@now - ip_window_days, @now] (it adds to the referrer's IP hashes). Served by the
-- customer_events and customers primary keys and customers_referred_by_idx.
SELECT moved.referrer_id::uuid AS referrer_id FROM (
    SELECT c.referred_by AS referrer_id
    FROM customer_events e
    JOIN customers c ON c.tenant_id = e.tenant_id AND c.id = e.customer_id
    WHERE e.tenant_id = @tenant_id::uuid AND e.id = ANY(@event_ids::uuid[])
      AND e.type = 'registered' AND e.ip_hash IS NOT NULL AND c.referred_by IS NOT NULL
    UNION
    SELECT e.customer_id
    FROM customer_events e
    JOIN referral_settings_effective st ON st.tenant_id = e.tenant_id
    WHERE e.tenant_id = @tenant_id::uuid AND e.id = ANY(@event_ids::uuid[]) AND e.ip_hash IS NOT NULL
      AND e.occurred_at >= sqlc.arg(now)::timestamptz - make_interval(0, 0, 0, st.ip_window_days)
      AND e.occurred_at <= sqlc.arg(now)::timestamptz
      AND EXISTS (SELECT 1 FROM customers r WHERE r.tenant_id = e.tenant_id AND r.referred_by = e.customer_id)
) moved
ORDER BY moved.referrer_id;

-- name: ReferralRecomputeSession :exec
-- ReferralRecomputeSession sets, until the end of the transaction, what the full
-- computation (referral_compute of all referrers) needs at a million customers: JIT off
-- (compiling its large plan costs seconds, more than it saves) and a work_mem in which its
-- hashes and sorts stay in memory.
SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true);
