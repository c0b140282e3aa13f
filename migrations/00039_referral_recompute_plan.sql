-- +goose Up
-- The full referral recompute at a million customers (issue 15), measured with EXPLAIN
-- (ANALYZE, BUFFERS) in bench/README.md, spent most of its time in two places that ran
-- row by row or on one core:
--
-- - the candidates' registered IP hashes: an index probe of customer_events_customer_idx per
--   candidate (176 000 at 1M customers), about a third of the statement. For all referrers
--   referral_recompute_store now plans the computation with enable_nestloop off, for that
--   statement only (set_config local to the transaction, restored after it, so that it holds
--   behind a transaction pooler and leaves the store, the announcements and everything else
--   in the transaction alone): the registered events become one parallel hash, built by the
--   leader and both workers. The recompute of given referrers keeps its index lookups.
-- - the shared-IP check: a hashed subplan of the 493 000 (referrer, IP hash) pairs of the
--   events in the IP window, built by the leader alone and probed per candidate. It is now a
--   left join of the candidates to the distinct pairs, which the planner sorts in the
--   workers and merges, or looks up by index for given referrers.
--
-- The rules are unchanged (the property tests of jobs/ compare them with the seed's
-- algorithm and with per-event maintenance); only how referral_compute finds shared IP hashes
-- and how referral_recompute_store plans the full computation change.

-- referral_compute: as in migration 00033 (the rules, its shape and indexes are described
-- there), except that a candidate's IP hash is shared when the pair (referrer, IP hash) is
-- among the distinct pairs of the referrer's events in the IP window, joined (merged after
-- sorting in parallel workers for all referrers, an index lookup for given ones) rather than
-- probed in a hashed subplan.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION referral_compute(compute_tenant uuid, compute_now timestamptz, compute_referrers uuid[])
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
               WHEN sh.referrer_id IS NOT NULL THEN 'shared_ip'
               ELSE 'passed'
           END AS status
    FROM candidates cd CROSS JOIN settings st
    LEFT JOIN (SELECT DISTINCT w.customer_id AS referrer_id, w.ip_hash FROM window_ips w) sh
        ON sh.referrer_id = cd.referrer_id AND sh.ip_hash = cd.ip_hash
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

-- referral_recompute_store: as in migration 00033, except that the computation of all
-- referrers (the CREATE TABLE AS) is planned with enable_nestloop off, set local to the
-- transaction and restored right after it: the planner otherwise probes customer_events by
-- index once per candidate instead of hashing the registered events in parallel.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION referral_recompute_store(store_tenant uuid, store_now timestamptz, store_referrers uuid[])
    RETURNS TABLE (processed int, updated int, rewards_changed int)
    LANGUAGE plpgsql
AS $fn$
DECLARE
    source text := 'SELECT * FROM referral_compute($1, $2, $3)';
    nestloop text := current_setting('enable_nestloop');
BEGIN
    IF store_referrers IS NULL THEN
        PERFORM set_config('enable_nestloop', 'off', true);
        CREATE TEMP TABLE referral_computed ON COMMIT DROP AS
            SELECT * FROM referral_compute(store_tenant, store_now, NULL);
        PERFORM set_config('enable_nestloop', nestloop, true);
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

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION referral_recompute_store(store_tenant uuid, store_now timestamptz, store_referrers uuid[])
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION referral_compute(compute_tenant uuid, compute_now timestamptz, compute_referrers uuid[])
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
