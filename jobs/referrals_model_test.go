package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

// This file holds the referral tests' data model: a tenant's customers, events and
// subscriptions described in Go, loaded into the database, and seedSnapshot, a plain
// transcription of the seed service's per-referrer algorithm (seeds/002) with SPEC 6's
// decision that a customer counts once, by their earliest-started qualifying subscription.
// The SQL (ReferralRecompute) must agree with it on any data.

const day = 24 * time.Hour

// refSettings are a tenant's referral settings.
type refSettings struct {
	BatchSize, BonusPerBatch, VerifiedAt, EliteAt, CooldownDays, IPWindowDays int
	RequireIP                                                                 bool
}

// defaultRefSettings are the seed's defaults.
var defaultRefSettings = refSettings{BatchSize: 3, BonusPerBatch: 5, VerifiedAt: 3, EliteAt: 10, CooldownDays: 7, IPWindowDays: 30, RequireIP: true}

type refCustomer struct {
	ReferredBy int // index of the referrer in refWorld.Customers, -1 for none
	Active     bool
	Verified   bool
	CreatedAt  time.Time
}

type refEvent struct {
	Customer   int
	Type       string
	IP         string // "" for none
	OccurredAt time.Time
}

type refSubscription struct {
	Customer   int
	Qualifying bool // on a policy that qualifies_for_referrals
	Status     sql.SubscriptionStatus
	CreatedAt  time.Time
	ExpiresAt  *time.Time // the licence's expiry
}

// refWorld is one tenant's referral data.
type refWorld struct {
	Customers     []refCustomer
	Events        []refEvent
	Subscriptions []refSubscription
}

// refSnapshot is one referrer's referral counts and reward.
type refSnapshot struct {
	ReferredTotal, Qualified, Cooldown, MissingIP, SharedIP, DuplicateIP, Bonus int
	Badge                                                                       string
}

// seedSnapshot transcribes the seed's get_referral_reward_snapshot for one referrer, at now.
// order permutes the candidate rows (the seed reads them in whatever order the database
// returns): the result must not depend on it.
func seedSnapshot(w refWorld, s refSettings, now time.Time, referrer int, order func(n int) []int) refSnapshot {
	var snap refSnapshot
	for _, c := range w.Customers {
		if c.ReferredBy == referrer {
			snap.ReferredTotal++
		}
	}
	var cooldownCutoff *time.Time
	if s.CooldownDays > 0 {
		cut := now.Add(-time.Duration(s.CooldownDays) * day)
		cooldownCutoff = &cut
	}
	windowStart := now.Add(-time.Duration(s.IPWindowDays) * day)
	referrerIPs := map[string]bool{}
	for _, e := range w.Events {
		if e.Customer == referrer && e.IP != "" && !e.OccurredAt.Before(windowStart) && !e.OccurredAt.After(now) {
			referrerIPs[e.IP] = true
		}
	}
	signupIP := func(customer int) string {
		best := ""
		for _, e := range w.Events {
			if e.Customer == customer && e.Type == "registered" && e.IP > best {
				best = e.IP
			}
		}
		return best
	}
	type row struct {
		createdAt, startedAt time.Time
		ip                   string
	}
	var rows []row
	for i, c := range w.Customers {
		if c.ReferredBy != referrer || !c.Active || !c.Verified {
			continue
		}
		var started *time.Time
		for _, sub := range w.Subscriptions {
			live := sub.Status == sql.SubscriptionStatusActive || sub.Status == sql.SubscriptionStatusPastDue
			if sub.Customer != i || !sub.Qualifying || !live || (sub.ExpiresAt != nil && sub.ExpiresAt.Before(now)) {
				continue
			}
			if started == nil || sub.CreatedAt.Before(*started) {
				at := sub.CreatedAt
				started = &at
			}
		}
		if started != nil {
			rows = append(rows, row{createdAt: c.CreatedAt, startedAt: *started, ip: signupIP(i)})
		}
	}
	qualifiedIPs := map[string]bool{}
	for _, i := range order(len(rows)) {
		r := rows[i]
		if cooldownCutoff != nil && (r.createdAt.After(*cooldownCutoff) || r.startedAt.After(*cooldownCutoff)) {
			snap.Cooldown++
			continue
		}
		if s.RequireIP && r.ip == "" {
			snap.MissingIP++
			continue
		}
		if r.ip != "" && len(referrerIPs) > 0 && referrerIPs[r.ip] {
			snap.SharedIP++
			continue
		}
		if r.ip != "" && qualifiedIPs[r.ip] {
			snap.DuplicateIP++
			continue
		}
		if r.ip != "" {
			qualifiedIPs[r.ip] = true
		}
		snap.Qualified++
	}
	if snap.Qualified > 0 {
		snap.Bonus = snap.Qualified / s.BatchSize * s.BonusPerBatch
	}
	switch {
	case snap.Qualified >= s.EliteAt:
		snap.Badge = "elite_referrer"
	case snap.Qualified >= s.VerifiedAt:
		snap.Badge = "verified_referrer"
	}
	return snap
}

// inOrder is the identity permutation.
func inOrder(n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	return order
}

// loaded is a refWorld in the database: its tenant and its customers' ids by index.
type loaded struct {
	tenant sql.Tenant
	ids    []uuid.UUID
}

// load writes w into a new tenant with settings s, with plain inserts (fast enough for
// property tests), and returns the tenant and customer ids.
func load(t testing.TB, tx pgx.Tx, w refWorld, s refSettings) loaded {
	t.Helper()
	ctx := context.Background()
	l := loaded{tenant: factory.Tenant(t, tx), ids: make([]uuid.UUID, len(w.Customers))}
	tenantID := l.tenant.ID
	policies := map[bool]uuid.UUID{
		true:  factory.Policy(t, tx, tenantID, factory.PolicyRecurring(30), factory.PolicyQualifiesForReferrals()).ID,
		false: factory.Policy(t, tx, tenantID, factory.PolicyRecurring(30)).ID,
	}
	_, err := queries.ReferralSettingsPut(ctx, tx, sql.ReferralSettingsPutParams{
		TenantID: tenantID, BatchSize: int32(s.BatchSize), BonusPerBatch: int32(s.BonusPerBatch),
		VerifiedBadgeAt: int32(s.VerifiedAt), EliteBadgeAt: int32(s.EliteAt), CooldownDays: int32(s.CooldownDays),
		IPWindowDays: int32(s.IPWindowDays), RequireIPHash: s.RequireIP, Now: factory.Now,
	})
	require.NoError(t, err)
	for i := range w.Customers {
		l.ids[i] = core.NewID()
	}
	for i, c := range w.Customers {
		var referredBy *uuid.UUID
		if c.ReferredBy >= 0 {
			referredBy = &l.ids[c.ReferredBy]
		}
		_, err := tx.Exec(ctx, `INSERT INTO customers (tenant_id, id, email, is_active, is_verified, invite_code, referred_by, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
			tenantID, l.ids[i], l.ids[i].String()+"@example.com", c.Active, c.Verified, "inv-"+l.ids[i].String()[24:], referredBy, c.CreatedAt)
		require.NoError(t, err)
	}
	for _, e := range w.Events {
		var ip *string
		if e.IP != "" {
			ip = &e.IP
		}
		_, err := tx.Exec(ctx, `INSERT INTO customer_events (tenant_id, id, customer_id, type, ip_hash, occurred_at, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6)`, tenantID, core.NewID(), l.ids[e.Customer], e.Type, ip, e.OccurredAt)
		require.NoError(t, err)
	}
	for _, sub := range w.Subscriptions {
		licenseID, subID := core.NewID(), core.NewID()
		_, err := tx.Exec(ctx, `INSERT INTO licenses (tenant_id, id, policy_id, customer_id, key, issued_at, expires_at, status_changed_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $6)`, tenantID, licenseID, policies[sub.Qualifying], l.ids[sub.Customer], "key-"+licenseID.String(), sub.CreatedAt, sub.ExpiresAt)
		require.NoError(t, err)
		var cancelledAt *time.Time
		if sub.Status == sql.SubscriptionStatusCancelled {
			cancelledAt = &sub.CreatedAt
		}
		_, err = tx.Exec(ctx, `INSERT INTO subscriptions (tenant_id, id, customer_id, license_id, policy_id, status, price_currency, price_value,
				period_days, current_period_start, current_period_end, created_at, cancelled_at, status_changed_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'USD', 1000, 30, $7, $7::timestamptz + interval '30 days', $7, $8, $7, $7)`,
			tenantID, subID, l.ids[sub.Customer], licenseID, policies[sub.Qualifying], sub.Status, sub.CreatedAt, cancelledAt)
		require.NoError(t, err)
	}
	return l
}

// sqlSnapshots computes every referrer's snapshot with ReferralCompute without writing,
// by customer index; referrers without referrals are absent.
func sqlSnapshots(t testing.TB, tx pgx.Tx, l loaded, now time.Time) map[int]refSnapshot {
	t.Helper()
	rows, err := queries.ReferralCompute(context.Background(), core.CustomPlans{DB: tx}, sql.ReferralComputeParams{TenantID: l.tenant.ID, Now: now})
	require.NoError(t, err)
	index := map[uuid.UUID]int{}
	for i, id := range l.ids {
		index[id] = i
	}
	out := map[int]refSnapshot{}
	for _, r := range rows {
		if r.ReferrerID == nil {
			continue
		}
		out[index[*r.ReferrerID]] = snapshotOf(r)
	}
	return out
}

func snapshotOf(r sql.ReferralComputeRow) refSnapshot {
	s := refSnapshot{
		ReferredTotal: int(*r.ReferredTotal), Qualified: int(*r.QualifiedTotal), Cooldown: int(*r.DisqualifiedCooldown),
		MissingIP: int(*r.DisqualifiedMissingIP), SharedIP: int(*r.DisqualifiedSharedIP), DuplicateIP: int(*r.DisqualifiedDuplicateIP),
		Bonus: int(*r.BonusUnits),
	}
	if r.Badge != nil {
		s.Badge = string(*r.Badge)
	}
	return s
}

// storedSnapshots reads the stored rewards of l's tenant, by customer index.
func storedSnapshots(t testing.TB, tx pgx.Tx, l loaded) map[int]refSnapshot {
	t.Helper()
	index := map[uuid.UUID]int{}
	for i, id := range l.ids {
		index[id] = i
	}
	rows, err := tx.Query(context.Background(), `SELECT customer_id, referred_total, qualified_total, disqualified_cooldown, disqualified_missing_ip,
		disqualified_shared_ip, disqualified_duplicate_ip, bonus_units, coalesce(badge::text, '') FROM referral_rewards WHERE tenant_id = $1`, l.tenant.ID)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int]refSnapshot{}
	for rows.Next() {
		var id uuid.UUID
		var s refSnapshot
		require.NoError(t, rows.Scan(&id, &s.ReferredTotal, &s.Qualified, &s.Cooldown, &s.MissingIP, &s.SharedIP, &s.DuplicateIP, &s.Bonus, &s.Badge))
		out[index[id]] = s
	}
	require.NoError(t, rows.Err())
	return out
}

// modelSnapshots runs seedSnapshot for every customer with referrals.
func modelSnapshots(w refWorld, s refSettings, now time.Time, order func(int) []int) map[int]refSnapshot {
	out := map[int]refSnapshot{}
	for _, c := range w.Customers {
		if _, ok := out[c.ReferredBy]; c.ReferredBy >= 0 && !ok {
			out[c.ReferredBy] = seedSnapshot(w, s, now, c.ReferredBy, order)
		}
	}
	return out
}
