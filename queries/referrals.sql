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
-- referrers referrer_ids names, in one set-based, read-only statement (so that Postgres may
-- run it with parallel workers), next to each referrer's stored reward. ReferralRecompute
-- (internal/core) stores what it returns with ReferralRewardsStore.
--
-- A referral (a customer whose referred_by is the referrer) is a candidate when the customer
-- is active and verified and has a subscription that is active or past_due, on a policy
-- that qualifies_for_referrals, not expired (its licence's expires_at NULL or >= @now). A
-- customer is one candidate however many such subscriptions they have; the earliest-started
-- one is used. Each candidate then gets the first reason that applies, in this order:
--   cooldown:     cooldown_days > 0 and the account or that subscription was created after
--                 @now - cooldown_days;
--   missing_ip:   require_ip_hash and the customer has no IP hash: the greatest (bytewise)
--                 non-null ip_hash of its `registered` events;
--   shared_ip:    the IP hash equals one the referrer used in any event with occurred_at in
--                 [@now - ip_window_days, @now];
--   duplicate_ip: among the referrer's candidates left, others have the same IP hash: one of
--                 them counts, the others are duplicates;
-- and qualifies otherwise. Counts never depend on row order. bonus_units is
-- (qualified / batch_size) * bonus_per_batch, at most 1,000,000 (so that max_machines, at most
-- as much, plus the bonus fits an integer; computed in bigint so it cannot overflow); the badge is elite_referrer from
-- elite_badge_at qualified, verified_referrer from verified_badge_at.
--
-- The referrers in scope are those with referrals and those with a stored reward. The result
-- has at least one row: processed (referrers in scope) on each, and the referrer columns of
-- every referrer in scope, or with changed_only of those whose computed values differ from
-- their stored reward or that have none; previous_* and stored_computed_at are the stored
-- reward's (stored_computed_at NULL: none). Other columns are NULL on the one row of an empty result.
--
-- Shape (bench/README.md has the plan at 1M customers): each CTE but settings (one row) and
-- rewarded is read once, so Postgres inlines it and estimates its joins from the tables'
-- statistics. candidates is one grouping of the eligible referrals joined to their live
-- subscriptions and registered events; shares joins the candidates to the events in the IP
-- window on the referrer and the IP hash (a hash join); duplicates come from counting each
-- referrer's passed candidates per IP hash; referred totals are an index-only scan of
-- customers_referred_by_idx. ReferralRecompute runs it with JIT off and a larger work_mem
-- (ReferralRecomputeSession).
--
-- Served by customers_referred_by_idx (referred totals; the referrals of given referrers) or a
-- scan of the tenant's customers (all), subscriptions_customer_idx, the licences and
-- policies primary keys, customer_events_customer_idx for registered events and the
-- referrers' IP hashes (given referrers) or a scan of customer_events (all), and the
-- referral_rewards primary key.
WITH settings AS (
    SELECT st.batch_size, st.bonus_per_batch, st.verified_badge_at, st.elite_badge_at, st.require_ip_hash,
           sqlc.arg(now)::timestamptz - make_interval(0, 0, 0, st.cooldown_days) AS cooldown_cutoff,
           st.cooldown_days > 0 AS cooldown_on,
           sqlc.arg(now)::timestamptz - make_interval(0, 0, 0, st.ip_window_days) AS ip_window_start
    FROM referral_settings_effective st
    WHERE st.tenant_id = @tenant_id::uuid
), candidates AS (
    SELECT c.id, c.referred_by AS referrer_id, c.created_at, min(s.created_at) AS started_at, max(e.ip_hash COLLATE "C") AS ip_hash
    FROM customers c
    JOIN subscriptions s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id
    JOIN policies p ON p.tenant_id = s.tenant_id AND p.id = s.policy_id
    JOIN licenses l ON l.tenant_id = s.tenant_id AND l.id = s.license_id
    LEFT JOIN customer_events e ON e.tenant_id = c.tenant_id AND e.customer_id = c.id AND e.type = 'registered' AND e.ip_hash IS NOT NULL
    WHERE c.tenant_id = @tenant_id::uuid AND c.referred_by IS NOT NULL AND c.is_active AND c.is_verified
      AND (sqlc.narg(referrer_ids)::uuid[] IS NULL OR c.referred_by = ANY(sqlc.narg(referrer_ids)::uuid[]))
      AND s.status IN ('active', 'past_due') AND p.qualifies_for_referrals
      AND (l.expires_at IS NULL OR l.expires_at >= sqlc.arg(now)::timestamptz)
    GROUP BY c.tenant_id, c.id
), shares AS (
    SELECT cd.referrer_id, cd.ip_hash, cd.created_at, cd.started_at, count(e.customer_id) > 0 AS shared
    FROM candidates cd
    LEFT JOIN customer_events e ON e.tenant_id = @tenant_id::uuid AND e.customer_id = cd.referrer_id
         AND e.ip_hash COLLATE "C" = cd.ip_hash
         AND e.occurred_at >= (SELECT ws.ip_window_start FROM settings ws) AND e.occurred_at <= sqlc.arg(now)::timestamptz
    GROUP BY cd.id, cd.referrer_id, cd.ip_hash, cd.created_at, cd.started_at
), checked AS (
    SELECT sh.referrer_id, sh.ip_hash,
           CASE
               WHEN st.cooldown_on AND (sh.created_at > st.cooldown_cutoff OR sh.started_at > st.cooldown_cutoff) THEN 'cooldown'
               WHEN st.require_ip_hash AND sh.ip_hash IS NULL THEN 'missing_ip'
               WHEN sh.shared THEN 'shared_ip'
               ELSE 'passed'
           END AS status
    FROM shares sh CROSS JOIN settings st
), by_ip AS (
    SELECT ch.referrer_id, ch.status, ch.ip_hash, count(*)::int AS n
    FROM checked ch
    GROUP BY ch.referrer_id, ch.status, ch.ip_hash
), outcomes AS (
    SELECT b.referrer_id,
           sum(CASE WHEN b.ip_hash IS NULL THEN b.n ELSE 1 END) FILTER (WHERE b.status = 'passed') AS qualified,
           sum(b.n) FILTER (WHERE b.status = 'cooldown') AS cooldown,
           sum(b.n) FILTER (WHERE b.status = 'missing_ip') AS missing_ip,
           sum(b.n) FILTER (WHERE b.status = 'shared_ip') AS shared_ip,
           sum(b.n - 1) FILTER (WHERE b.status = 'passed' AND b.ip_hash IS NOT NULL) AS duplicate_ip
    FROM by_ip b
    GROUP BY b.referrer_id
), referred AS (
    SELECT c.referred_by AS referrer_id, count(*) AS referred_total
    FROM customers c
    WHERE c.tenant_id = @tenant_id::uuid AND c.referred_by IS NOT NULL
      AND (sqlc.narg(referrer_ids)::uuid[] IS NULL OR c.referred_by = ANY(sqlc.narg(referrer_ids)::uuid[]))
    GROUP BY c.referred_by
), computed AS (
    SELECT r.referrer_id, r.referred_total::int AS referred_total,
           coalesce(o.qualified, 0)::int AS qualified_total,
           coalesce(o.cooldown, 0)::int AS disqualified_cooldown,
           coalesce(o.missing_ip, 0)::int AS disqualified_missing_ip,
           coalesce(o.shared_ip, 0)::int AS disqualified_shared_ip,
           coalesce(o.duplicate_ip, 0)::int AS disqualified_duplicate_ip
    FROM referred r
    LEFT JOIN outcomes o ON o.referrer_id = r.referrer_id
), stored AS (
    SELECT rw.* FROM referral_rewards rw
    WHERE rw.tenant_id = @tenant_id::uuid
      AND (sqlc.narg(referrer_ids)::uuid[] IS NULL OR rw.customer_id = ANY(sqlc.narg(referrer_ids)::uuid[]))
), scoped AS (
    SELECT coalesce(c.referrer_id, sr.customer_id) AS referrer_id,
           coalesce(c.referred_total, 0) AS referred_total,
           coalesce(c.qualified_total, 0) AS qualified_total,
           coalesce(c.disqualified_cooldown, 0) AS disqualified_cooldown,
           coalesce(c.disqualified_missing_ip, 0) AS disqualified_missing_ip,
           coalesce(c.disqualified_shared_ip, 0) AS disqualified_shared_ip,
           coalesce(c.disqualified_duplicate_ip, 0) AS disqualified_duplicate_ip,
           sr.customer_id IS NOT NULL AS was_stored,
           sr.referred_total AS stored_referred_total, sr.qualified_total AS stored_qualified_total,
           sr.disqualified_cooldown AS stored_cooldown, sr.disqualified_missing_ip AS stored_missing_ip,
           sr.disqualified_shared_ip AS stored_shared_ip, sr.disqualified_duplicate_ip AS stored_duplicate_ip,
           sr.bonus_units AS previous_bonus_units,
           sr.badge AS previous_badge,
           sr.computed_at AS stored_computed_at
    FROM computed c
    FULL JOIN stored sr ON sr.customer_id = c.referrer_id
), rewarded AS MATERIALIZED (
    SELECT sc.*,
           LEAST((sc.qualified_total / st.batch_size)::bigint * st.bonus_per_batch, 1000000)::int AS bonus_units,
           (CASE
               WHEN sc.qualified_total >= st.elite_badge_at THEN 'elite_referrer'
               WHEN sc.qualified_total >= st.verified_badge_at THEN 'verified_referrer'
           END)::referral_badge AS badge
    FROM scoped sc CROSS JOIN settings st
)
SELECT t.processed,
       rd.referrer_id, rd.referred_total, rd.qualified_total, rd.disqualified_cooldown, rd.disqualified_missing_ip,
       rd.disqualified_shared_ip, rd.disqualified_duplicate_ip, rd.bonus_units, rd.badge,
       rd.previous_bonus_units, rd.previous_badge, rd.stored_computed_at
FROM (SELECT count(*)::int AS processed FROM rewarded) t
LEFT JOIN rewarded rd ON NOT @changed_only::bool OR NOT rd.was_stored
    OR (rd.stored_referred_total, rd.stored_qualified_total, rd.stored_cooldown, rd.stored_missing_ip,
        rd.stored_shared_ip, rd.stored_duplicate_ip, rd.previous_bonus_units, rd.previous_badge)
       IS DISTINCT FROM
       (rd.referred_total, rd.qualified_total, rd.disqualified_cooldown, rd.disqualified_missing_ip,
        rd.disqualified_shared_ip, rd.disqualified_duplicate_ip, rd.bonus_units, rd.badge)
ORDER BY rd.referrer_id;

-- name: ReferralRewardsStore :execrows
-- ReferralRewardsStore stores referrers' computed rewards (ReferralCompute's rows, element i
-- of each array one referrer, all the same length: the unnests of one select list advance
-- together; an empty badge is none) at @now, writing only the rows whose
-- values differ from the stored ones (the referral_rewards primary key); it returns how many
-- it wrote. The caller holds the referrers' locks (ReferralRewardsLock), so the stored rows
-- are those ReferralCompute read.
INSERT INTO referral_rewards AS rw (tenant_id, customer_id, referred_total, qualified_total, disqualified_cooldown,
                                    disqualified_missing_ip, disqualified_shared_ip, disqualified_duplicate_ip,
                                    bonus_units, badge, computed_at)
SELECT @tenant_id::uuid, u.customer_id, u.referred_total, u.qualified_total, u.cooldown, u.missing_ip, u.shared_ip,
       u.duplicate_ip, u.bonus_units, nullif(u.badge, '')::referral_badge, @now::timestamptz
FROM (SELECT unnest(@customer_ids::uuid[]) AS customer_id, unnest(@referred_totals::int[]) AS referred_total,
             unnest(@qualified_totals::int[]) AS qualified_total, unnest(@cooldowns::int[]) AS cooldown,
             unnest(@missing_ips::int[]) AS missing_ip, unnest(@shared_ips::int[]) AS shared_ip,
             unnest(@duplicate_ips::int[]) AS duplicate_ip, unnest(@bonus_units::int[]) AS bonus_units,
             unnest(@badges::text[]) AS badge) AS u
ORDER BY u.customer_id
ON CONFLICT (tenant_id, customer_id) DO UPDATE
SET referred_total = excluded.referred_total, qualified_total = excluded.qualified_total,
    disqualified_cooldown = excluded.disqualified_cooldown, disqualified_missing_ip = excluded.disqualified_missing_ip,
    disqualified_shared_ip = excluded.disqualified_shared_ip, disqualified_duplicate_ip = excluded.disqualified_duplicate_ip,
    bonus_units = excluded.bonus_units, badge = excluded.badge, computed_at = excluded.computed_at
WHERE (rw.referred_total, rw.qualified_total, rw.disqualified_cooldown, rw.disqualified_missing_ip,
       rw.disqualified_shared_ip, rw.disqualified_duplicate_ip, rw.bonus_units, rw.badge)
      IS DISTINCT FROM
      (excluded.referred_total, excluded.qualified_total, excluded.disqualified_cooldown, excluded.disqualified_missing_ip,
       excluded.disqualified_shared_ip, excluded.disqualified_duplicate_ip, excluded.bonus_units, excluded.badge);

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
-- ReferralCompute needs at a million customers: JIT off (compiling its large plan costs
-- seconds, more than it saves) and a work_mem in which its hashes and sorts stay in memory.
SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true);
