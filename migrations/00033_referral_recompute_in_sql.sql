-- +goose Up
-- The referral recompute stores what it computes in the statement that computes it
-- (ReferralRecomputeStore), so that nothing proportional to a tenant's referrers travels to
-- the process: the decision (SPEC 6) becomes one function that both that statement and the
-- read-only ReferralCompute select from, and the rewards whose bonus or badge changed wait,
-- marked, in referral_rewards until the recompute announces them a page at a time
-- (ReferralRewardsAnnounce), inside the same transaction.

-- referral_compute decides every referral of tenant compute_tenant's referrers (SPEC 6), or
-- of the referrers compute_referrers names (NULL: all), at instant compute_now, next to each
-- referrer's stored reward: one row per referrer in scope (those with referrals and those
-- with a stored reward).
--
-- A referral (a customer whose referred_by is the referrer) is a candidate when the customer
-- is active and verified and has a subscription that is active or past_due, on a policy
-- that qualifies_for_referrals, not expired (its licence's expires_at NULL or >= now). A
-- customer is one candidate however many such subscriptions they have; the earliest-started
-- one is used. Each candidate then gets the first reason that applies, in this order:
--   cooldown:     cooldown_days > 0 and the account or that subscription was created after
--                 now - cooldown_days;
--   missing_ip:   require_ip_hash and the customer has no IP hash: the greatest (bytewise)
--                 non-null ip_hash of its `registered` events;
--   shared_ip:    the IP hash equals one the referrer used in any event with occurred_at in
--                 [now - ip_window_days, now];
--   duplicate_ip: among the referrer's candidates left, others have the same IP hash: one of
--                 them counts, the others are duplicates;
-- and qualifies otherwise. Counts never depend on row order. bonus_units is
-- (qualified / batch_size) * bonus_per_batch, at most 1,000,000 (so that max_machines, at
-- most as much, plus the bonus fits an integer; computed in bigint so it cannot overflow);
-- the badge is elite_referrer from elite_badge_at qualified, verified_referrer from
-- verified_badge_at.
--
-- was_stored says a reward is stored; stored_* and previous_bonus_units, previous_badge,
-- stored_computed_at are its values (NULL: none). changed: the computed values differ from
-- the stored ones, or none is stored (what a recompute writes); reward_changed: the bonus or
-- the badge differs from the stored ones, none stored counting as 0 and no badge (what it
-- announces).
--
-- Shape (bench/README.md has the plan at 1M customers): SQL, STABLE and not STRICT, so
-- that the planner inlines it into the calling statement and plans it for that call's
-- arguments (core.CustomPlans). Each CTE but settings (one row) is read once, so Postgres
-- inlines it and estimates its joins from the tables' statistics. candidates is one grouping
-- of the eligible referrals joined to their live subscriptions and registered events; a
-- candidate's IP hash is shared when the pair (referrer, IP hash) is among the pairs of the
-- events in the IP window (a hashed semi-join, or an index lookup of the referrers given);
-- duplicates come from counting each referrer's passed candidates per IP hash; referred
-- totals are an index-only scan of customers_referred_by_idx.
--
-- Served by customers_referred_by_idx (referred totals; the referrals of given referrers) or a
-- scan of the tenant's customers (all), subscriptions_customer_idx, the licences and
-- policies primary keys, customer_events_customer_idx for registered events and the
-- referrers' IP hashes (given referrers) or a scan of customer_events (all), and the
-- referral_rewards primary key.
-- +goose StatementBegin
CREATE FUNCTION referral_compute(compute_tenant uuid, compute_now timestamptz, compute_referrers uuid[])
    RETURNS TABLE (referrer_id uuid, referred_total int, qualified_total int, disqualified_cooldown int,
                   disqualified_missing_ip int, disqualified_shared_ip int, disqualified_duplicate_ip int,
                   bonus_units int, badge referral_badge, was_stored boolean, previous_bonus_units int,
                   previous_badge referral_badge, stored_computed_at timestamptz, changed boolean, reward_changed boolean)
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
WITH settings AS (
    SELECT st.batch_size, st.bonus_per_batch, st.verified_badge_at, st.elite_badge_at, st.require_ip_hash,
           compute_now - make_interval(0, 0, 0, st.cooldown_days) AS cooldown_cutoff,
           st.cooldown_days > 0 AS cooldown_on,
           compute_now - make_interval(0, 0, 0, st.ip_window_days) AS ip_window_start
    FROM referral_settings_effective st
    WHERE st.tenant_id = compute_tenant
), candidates AS (
    SELECT c.id, c.referred_by AS referrer_id, c.created_at, min(s.created_at) AS started_at, max(e.ip_hash COLLATE "C") AS ip_hash
    FROM customers c
    JOIN subscriptions s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id
    JOIN policies p ON p.tenant_id = s.tenant_id AND p.id = s.policy_id
    JOIN licenses l ON l.tenant_id = s.tenant_id AND l.id = s.license_id
    LEFT JOIN customer_events e ON e.tenant_id = c.tenant_id AND e.customer_id = c.id AND e.type = 'registered' AND e.ip_hash IS NOT NULL
    WHERE c.tenant_id = compute_tenant AND c.referred_by IS NOT NULL AND c.is_active AND c.is_verified
      AND (compute_referrers IS NULL OR c.referred_by = ANY(compute_referrers))
      AND s.status IN ('active', 'past_due') AND p.qualifies_for_referrals
      AND (l.expires_at IS NULL OR l.expires_at >= compute_now)
    GROUP BY c.tenant_id, c.id
), window_ips AS (
    SELECT e.customer_id, e.ip_hash COLLATE "C" AS ip_hash
    FROM customer_events e
    WHERE e.tenant_id = compute_tenant AND e.ip_hash IS NOT NULL
      AND (compute_referrers IS NULL OR e.customer_id = ANY(compute_referrers))
      AND e.occurred_at >= (SELECT ws.ip_window_start FROM settings ws) AND e.occurred_at <= compute_now
), checked AS (
    SELECT cd.referrer_id, cd.ip_hash,
           CASE
               WHEN st.cooldown_on AND (cd.created_at > st.cooldown_cutoff OR cd.started_at > st.cooldown_cutoff) THEN 'cooldown'
               WHEN st.require_ip_hash AND cd.ip_hash IS NULL THEN 'missing_ip'
               WHEN (cd.referrer_id, cd.ip_hash) IN (SELECT w.customer_id, w.ip_hash FROM window_ips w) THEN 'shared_ip'
               ELSE 'passed'
           END AS status
    FROM candidates cd CROSS JOIN settings st
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
    WHERE c.tenant_id = compute_tenant AND c.referred_by IS NOT NULL
      AND (compute_referrers IS NULL OR c.referred_by = ANY(compute_referrers))
    GROUP BY c.referred_by
), stored AS (
    SELECT rw.* FROM referral_rewards rw
    WHERE rw.tenant_id = compute_tenant
      AND (compute_referrers IS NULL OR rw.customer_id = ANY(compute_referrers))
), scoped AS (
    SELECT coalesce(r.referrer_id, sr.customer_id) AS referrer_id,
           coalesce(r.referred_total, 0)::int AS referred_total,
           coalesce(o.qualified, 0)::int AS qualified_total,
           coalesce(o.cooldown, 0)::int AS disqualified_cooldown,
           coalesce(o.missing_ip, 0)::int AS disqualified_missing_ip,
           coalesce(o.shared_ip, 0)::int AS disqualified_shared_ip,
           coalesce(o.duplicate_ip, 0)::int AS disqualified_duplicate_ip,
           sr.customer_id IS NOT NULL AS was_stored,
           sr.referred_total AS stored_referred_total, sr.qualified_total AS stored_qualified_total,
           sr.disqualified_cooldown AS stored_cooldown, sr.disqualified_missing_ip AS stored_missing_ip,
           sr.disqualified_shared_ip AS stored_shared_ip, sr.disqualified_duplicate_ip AS stored_duplicate_ip,
           sr.bonus_units AS previous_bonus_units, sr.badge AS previous_badge, sr.computed_at AS stored_computed_at
    FROM referred r
    LEFT JOIN outcomes o ON o.referrer_id = r.referrer_id
    FULL JOIN stored sr ON sr.customer_id = r.referrer_id
), rewarded AS (
    SELECT sc.*,
           LEAST((sc.qualified_total / st.batch_size)::bigint * st.bonus_per_batch, 1000000)::int AS bonus_units,
           (CASE
               WHEN sc.qualified_total >= st.elite_badge_at THEN 'elite_referrer'
               WHEN sc.qualified_total >= st.verified_badge_at THEN 'verified_referrer'
           END)::referral_badge AS badge
    FROM scoped sc CROSS JOIN settings st
)
SELECT rd.referrer_id, rd.referred_total, rd.qualified_total, rd.disqualified_cooldown, rd.disqualified_missing_ip,
       rd.disqualified_shared_ip, rd.disqualified_duplicate_ip, rd.bonus_units, rd.badge, rd.was_stored,
       rd.previous_bonus_units, rd.previous_badge, rd.stored_computed_at,
       NOT rd.was_stored
           OR (rd.stored_referred_total, rd.stored_qualified_total, rd.stored_cooldown, rd.stored_missing_ip,
               rd.stored_shared_ip, rd.stored_duplicate_ip, rd.previous_bonus_units, rd.previous_badge)
              IS DISTINCT FROM
              (rd.referred_total, rd.qualified_total, rd.disqualified_cooldown, rd.disqualified_missing_ip,
               rd.disqualified_shared_ip, rd.disqualified_duplicate_ip, rd.bonus_units, rd.badge) AS changed,
       (coalesce(rd.previous_bonus_units, 0), rd.previous_badge) IS DISTINCT FROM (rd.bonus_units, rd.badge) AS reward_changed
FROM rewarded rd
$$;
-- +goose StatementEnd

-- referral_recompute_store recomputes tenant store_tenant's referral rewards
-- (referral_compute), of all its referrers (store_referrers NULL) or of those it names, and
-- stores them at store_now, so that nothing proportional to the referrers leaves the
-- database: it writes only the rewards whose values changed or that were not stored, and
-- marks with announce, keeping the bonus and badge they replace (none stored: 0 and none),
-- those whose bonus or badge changed. It returns processed (referrers in scope), updated
-- (rewards written) and rewards_changed (rewards marked). The caller holds the referrers'
-- locks (ReferralRewardsLock), so the stored rows are those referral_compute read.
--
-- A statement that writes never runs with parallel workers, but CREATE TABLE AS does: all
-- referrers are first computed into a temporary table (CREATE TABLE AS, dropped before
-- returning, or with the statement that failed), given referrers straight from
-- referral_compute. The store is one dynamic
-- statement, planned at each call for its arguments like referral_compute's own plan.
-- +goose StatementBegin
CREATE FUNCTION referral_recompute_store(store_tenant uuid, store_now timestamptz, store_referrers uuid[])
    RETURNS TABLE (processed int, updated int, rewards_changed int)
    LANGUAGE plpgsql
AS $fn$
DECLARE
    source text := 'SELECT * FROM referral_compute($1, $2, $3)';
BEGIN
    IF store_referrers IS NULL THEN
        CREATE TEMP TABLE referral_computed ON COMMIT DROP AS
            SELECT * FROM referral_compute(store_tenant, store_now, NULL);
        source := 'SELECT * FROM pg_temp.referral_computed';
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH rewarded AS MATERIALIZED (%s), written AS (
            INSERT INTO referral_rewards AS rw (tenant_id, customer_id, referred_total, qualified_total, disqualified_cooldown,
                                                disqualified_missing_ip, disqualified_shared_ip, disqualified_duplicate_ip,
                                                bonus_units, badge, computed_at, announce, announce_previous_bonus, announce_previous_badge)
            SELECT $1, rd.referrer_id, rd.referred_total, rd.qualified_total, rd.disqualified_cooldown,
                   rd.disqualified_missing_ip, rd.disqualified_shared_ip, rd.disqualified_duplicate_ip, rd.bonus_units, rd.badge,
                   $2, rd.reward_changed,
                   CASE WHEN rd.reward_changed THEN coalesce(rd.previous_bonus_units, 0) END,
                   CASE WHEN rd.reward_changed THEN rd.previous_badge END
            FROM rewarded rd
            WHERE rd.changed
            ORDER BY rd.referrer_id
            ON CONFLICT (tenant_id, customer_id) DO UPDATE
            SET referred_total = excluded.referred_total, qualified_total = excluded.qualified_total,
                disqualified_cooldown = excluded.disqualified_cooldown, disqualified_missing_ip = excluded.disqualified_missing_ip,
                disqualified_shared_ip = excluded.disqualified_shared_ip, disqualified_duplicate_ip = excluded.disqualified_duplicate_ip,
                bonus_units = excluded.bonus_units, badge = excluded.badge, computed_at = excluded.computed_at,
                announce = excluded.announce, announce_previous_bonus = excluded.announce_previous_bonus,
                announce_previous_badge = excluded.announce_previous_badge
            RETURNING rw.announce
        )
        SELECT (SELECT count(*) FROM rewarded)::int, count(*)::int, (count(*) FILTER (WHERE w.announce))::int
        FROM written w$q$, source)
        USING store_tenant, store_now, store_referrers;
    IF store_referrers IS NULL THEN
        DROP TABLE pg_temp.referral_computed;
    END IF;
END
$fn$;
-- +goose StatementEnd

-- A reward whose bonus or badge a recompute changed, waiting in the recompute's transaction
-- to be announced (an audit entry and a referral.reward_changed event):
-- ReferralRecomputeStore sets announce with the bonus and badge it replaced,
-- ReferralRewardsAnnounce clears all three as it hands them out. Outside a recompute no
-- row has announce set.
ALTER TABLE referral_rewards
    ADD COLUMN announce               boolean NOT NULL DEFAULT false,
    ADD COLUMN announce_previous_bonus integer,
    ADD COLUMN announce_previous_badge referral_badge;

-- ReferralRewardsAnnounce: the rewards waiting to be announced, by referrer.
CREATE INDEX referral_rewards_announce_idx ON referral_rewards (tenant_id, customer_id) WHERE announce;

-- +goose Down
DROP FUNCTION referral_recompute_store(uuid, timestamptz, uuid[]);
DROP INDEX referral_rewards_announce_idx;
ALTER TABLE referral_rewards DROP COLUMN announce, DROP COLUMN announce_previous_bonus, DROP COLUMN announce_previous_badge;
DROP FUNCTION referral_compute(uuid, timestamptz, uuid[]);
