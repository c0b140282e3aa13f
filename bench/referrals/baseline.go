package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/sql"
)

// The baseline does what the seed service does (seeds/002, apply_referral_rewards_all): for
// each referrer, separate queries — count the referrals, read the referrer's IP hashes in
// the window, read the candidate referrals joined to their subscriptions and registration
// IP, decide each in a loop, then read the stored reward and write it when it changed.
// Decisions follow SPEC 6 as ReferralCompute does (a customer counts once, by their
// earliest-started qualifying subscription), so the answers can be compared.

const (
	loopCountReferrals = `SELECT count(*) FROM customers WHERE tenant_id = $1 AND referred_by = $2`

	loopReferrerIPs = `
		SELECT DISTINCT ip_hash COLLATE "C" FROM customer_events
		WHERE tenant_id = $1 AND customer_id = $2 AND ip_hash IS NOT NULL AND occurred_at >= $3 AND occurred_at <= $4`

	// loopCandidates is the seed's candidate query. %s is the filter of its registration-IP
	// subquery: the seed's has none (it aggregates every customer's registered events at
	// each referrer); the fair baseline narrows it to the referrer's referrals.
	loopCandidates = `
		SELECT c.id, c.created_at, s.created_at, reg.ip_hash
		FROM customers c
		JOIN subscriptions s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id
		JOIN policies p ON p.tenant_id = s.tenant_id AND p.id = s.policy_id
		JOIN licenses l ON l.tenant_id = s.tenant_id AND l.id = s.license_id
		LEFT JOIN (
		    SELECT e.customer_id, max(e.ip_hash COLLATE "C") AS ip_hash
		    FROM customer_events e
		    WHERE e.tenant_id = $1 AND e.type = 'registered' %s
		    GROUP BY e.customer_id
		) reg ON reg.customer_id = c.id
		WHERE c.tenant_id = $1 AND c.referred_by = $2 AND c.is_active AND c.is_verified
		  AND p.qualifies_for_referrals AND s.status IN ('active', 'past_due')
		  AND (l.expires_at IS NULL OR l.expires_at >= $3)`

	loopScopedIPs = `AND e.customer_id IN (SELECT r.id FROM customers r WHERE r.tenant_id = $1 AND r.referred_by = $2)`

	loopStored = `
		SELECT referred_total, qualified_total, disqualified_cooldown, disqualified_missing_ip,
		       disqualified_shared_ip, disqualified_duplicate_ip, bonus_units, badge::text
		FROM referral_rewards WHERE tenant_id = $1 AND customer_id = $2`

	loopWrite = `
		INSERT INTO referral_rewards (tenant_id, customer_id, referred_total, qualified_total, disqualified_cooldown,
		                              disqualified_missing_ip, disqualified_shared_ip, disqualified_duplicate_ip,
		                              bonus_units, badge, computed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::referral_badge, $11)
		ON CONFLICT (tenant_id, customer_id) DO UPDATE
		SET referred_total = excluded.referred_total, qualified_total = excluded.qualified_total,
		    disqualified_cooldown = excluded.disqualified_cooldown, disqualified_missing_ip = excluded.disqualified_missing_ip,
		    disqualified_shared_ip = excluded.disqualified_shared_ip, disqualified_duplicate_ip = excluded.disqualified_duplicate_ip,
		    bonus_units = excluded.bonus_units, badge = excluded.badge, computed_at = excluded.computed_at`
)

// snapshot is one referrer's counts and reward.
type snapshot struct {
	referred, qualified, cooldown, missingIP, sharedIP, duplicateIP, bonus int32
	badge                                                                  string
}

// baselineResult is one run of the loop.
type baselineResult struct {
	referrers, queries, updated int
	took                        time.Duration
	snapshots                   map[uuid.UUID]snapshot
}

// baseline runs the per-referrer loop over a fixed random sample of n referrers (those with
// referrals, ordered by md5 of their id) in one transaction, rolled back at the end so the
// data stays as it was. literal uses the seed's unfiltered registration-IP subquery.
func baseline(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID, n int, literal bool) (baselineResult, error) {
	rows, err := pool.Query(ctx, `
		SELECT referred_by FROM (SELECT DISTINCT referred_by FROM customers WHERE tenant_id = $1 AND referred_by IS NOT NULL) r
		ORDER BY md5(referred_by::text) LIMIT $2`, tenantID, n)
	if err != nil {
		return baselineResult{}, err
	}
	var sample []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return baselineResult{}, err
		}
		sample = append(sample, id)
	}
	if err := rows.Err(); err != nil {
		return baselineResult{}, err
	}

	settings, err := sql.New().ReferralSettingsGet(ctx, pool, tenantID)
	if err != nil {
		return baselineResult{}, fmt.Errorf("read settings: %w", err)
	}
	candidates := fmt.Sprintf(loopCandidates, loopScopedIPs)
	if literal {
		candidates = fmt.Sprintf(loopCandidates, "")
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		return baselineResult{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // the loop's writes are discarded on purpose
	res := baselineResult{referrers: len(sample), snapshots: map[uuid.UUID]snapshot{}}
	cooldownCutoff := now.Add(-time.Duration(settings.CooldownDays) * 24 * time.Hour)
	windowStart := now.Add(-time.Duration(settings.IPWindowDays) * 24 * time.Hour)
	start := clock.System{}.Now()
	for _, referrer := range sample {
		var snap snapshot
		if err := tx.QueryRow(ctx, loopCountReferrals, tenantID, referrer).Scan(&snap.referred); err != nil {
			return res, fmt.Errorf("count referrals: %w", err)
		}
		referrerIPs := map[string]bool{}
		ipRows, err := tx.Query(ctx, loopReferrerIPs, tenantID, referrer, windowStart, now)
		if err != nil {
			return res, err
		}
		for ipRows.Next() {
			var ip string
			if err := ipRows.Scan(&ip); err != nil {
				return res, err
			}
			referrerIPs[ip] = true
		}
		if err := ipRows.Err(); err != nil {
			return res, fmt.Errorf("referrer IPs: %w", err)
		}

		// One candidate per customer, by its earliest-started qualifying subscription.
		type candidate struct {
			createdAt, startedAt time.Time
			ip                   *string
		}
		byCustomer := map[uuid.UUID]*candidate{}
		var order []uuid.UUID
		candRows, err := tx.Query(ctx, candidates, tenantID, referrer, now)
		if err != nil {
			return res, err
		}
		for candRows.Next() {
			var id uuid.UUID
			var c candidate
			if err := candRows.Scan(&id, &c.createdAt, &c.startedAt, &c.ip); err != nil {
				return res, err
			}
			if prev, ok := byCustomer[id]; ok {
				if c.startedAt.Before(prev.startedAt) {
					prev.startedAt = c.startedAt
				}
				continue
			}
			byCustomer[id] = &c
			order = append(order, id)
		}
		if err := candRows.Err(); err != nil {
			return res, fmt.Errorf("candidates: %w", err)
		}
		qualifiedIPs := map[string]bool{}
		for _, id := range order {
			c := byCustomer[id]
			switch {
			case settings.CooldownDays > 0 && (c.createdAt.After(cooldownCutoff) || c.startedAt.After(cooldownCutoff)):
				snap.cooldown++
			case settings.RequireIPHash && c.ip == nil:
				snap.missingIP++
			case c.ip != nil && referrerIPs[*c.ip]:
				snap.sharedIP++
			case c.ip != nil && qualifiedIPs[*c.ip]:
				snap.duplicateIP++
			default:
				if c.ip != nil {
					qualifiedIPs[*c.ip] = true
				}
				snap.qualified++
			}
		}
		snap.bonus = (snap.qualified / settings.BatchSize) * settings.BonusPerBatch
		switch {
		case snap.qualified >= settings.EliteBadgeAt:
			snap.badge = string(sql.ReferralBadgeEliteReferrer)
		case snap.qualified >= settings.VerifiedBadgeAt:
			snap.badge = string(sql.ReferralBadgeVerifiedReferrer)
		}
		res.snapshots[referrer] = snap

		var stored snapshot
		var badge *string
		err = tx.QueryRow(ctx, loopStored, tenantID, referrer).Scan(&stored.referred, &stored.qualified, &stored.cooldown,
			&stored.missingIP, &stored.sharedIP, &stored.duplicateIP, &stored.bonus, &badge)
		found := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return res, fmt.Errorf("stored reward: %w", err)
		}
		if badge != nil {
			stored.badge = *badge
		}
		res.queries += 4
		if !found || stored != snap {
			var newBadge *string
			if snap.badge != "" {
				newBadge = &snap.badge
			}
			_, err := tx.Exec(ctx, loopWrite, tenantID, referrer, snap.referred, snap.qualified, snap.cooldown,
				snap.missingIP, snap.sharedIP, snap.duplicateIP, snap.bonus, newBadge, now)
			if err != nil {
				return res, fmt.Errorf("write reward: %w", err)
			}
			res.queries++
			res.updated++
		}
	}
	res.took = time.Since(start)
	return res, nil
}

// compare counts the sampled referrers whose loop answer differs from their stored reward,
// which the full recompute stored and the one after it found current.
func compare(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID, loop map[uuid.UUID]snapshot) (int, error) {
	ids := make([]uuid.UUID, 0, len(loop))
	for id := range loop {
		ids = append(ids, id)
	}
	rows, err := pool.Query(ctx, `
		SELECT customer_id, referred_total, qualified_total, disqualified_cooldown, disqualified_missing_ip,
		       disqualified_shared_ip, disqualified_duplicate_ip, bonus_units, coalesce(badge::text, '')
		FROM referral_rewards WHERE tenant_id = $1 AND customer_id = ANY($2)`, tenantID, ids)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	stored := map[uuid.UUID]snapshot{}
	for rows.Next() {
		var id uuid.UUID
		var s snapshot
		if err := rows.Scan(&id, &s.referred, &s.qualified, &s.cooldown, &s.missingIP, &s.sharedIP, &s.duplicateIP, &s.bonus, &s.badge); err != nil {
			return 0, err
		}
		stored[id] = s
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	mismatches := 0
	for id, s := range loop {
		if stored[id] != s {
			mismatches++
		}
	}
	return mismatches, nil
}
