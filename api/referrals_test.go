package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

// recomputeJobs counts the full referral.recompute jobs enqueued for the bundle's tenant.
func recomputeJobs(t *testing.T, b *bundle) int {
	t.Helper()
	var n int
	err := b.db.QueryRow(context.Background(),
		"SELECT count(*) FROM river_job WHERE kind = 'referral.recompute' AND args->>'tenant_id' = $1 AND NOT args ? 'referrer_id'",
		b.tenant.ID.String()).Scan(&n)
	require.NoError(t, err)
	return n
}

// rewardStored reports whether the bundle's tenant has a stored reward for referrer: a
// recompute of a referrer with referrals stores one.
func rewardStored(t *testing.T, b *bundle, referrer uuid.UUID) bool {
	t.Helper()
	var stored bool
	err := b.db.QueryRow(context.Background(), "SELECT EXISTS (SELECT FROM referral_rewards WHERE tenant_id = $1 AND customer_id = $2)",
		b.tenant.ID, referrer).Scan(&stored)
	require.NoError(t, err)
	return stored
}

// rewardsStored counts the bundle's tenant's stored rewards.
func rewardsStored(t *testing.T, b *bundle) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM referral_rewards WHERE tenant_id = $1", b.tenant.ID).Scan(&n))
	return n
}

// forgetRewards deletes the bundle's tenant's stored rewards, so that rewardStored shows
// whether the next change recomputed a referrer.
func forgetRewards(t *testing.T, b *bundle) {
	t.Helper()
	_, err := b.db.Exec(context.Background(), "DELETE FROM referral_rewards WHERE tenant_id = $1", b.tenant.ID)
	require.NoError(t, err)
}

// referrals gives the bundle's tenant a referrer with n referrals that qualify once the
// cooldown has passed: verified, 30 days old, each from its own IP hash, each subscribed
// (at factory.Now) to a qualifying policy.
func referrals(t *testing.T, b *bundle, n int) sql.Customer {
	t.Helper()
	referrer := factory.Customer(t, b.db, b.tenant.ID, factory.CustomerVerified())
	policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30), factory.PolicyQualifiesForReferrals())
	for i := range n {
		c := factory.Customer(t, b.db, b.tenant.ID, factory.CustomerReferredBy(referrer.ID), factory.CustomerVerified(),
			factory.CustomerCreatedAt(factory.Now.Add(-30*day)))
		factory.CustomerEvent(t, b.db, b.tenant.ID, c.ID, "registered", fmt.Sprint("ip-", i), factory.Now.Add(-30*day))
		factory.Subscription(t, b.db, b.tenant.ID, policy.ID, c.ID)
	}
	return referrer
}

func TestReferralSettings(t *testing.T) {
	t.Parallel()

	t.Run("DefaultsThenUpdate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got := decode[api.ReferralSettings](t, b.request(t, http.MethodGet, "/v1/admin/referrals/settings", ""))
		require.Equal(t, api.ReferralSettings{BatchSize: 3, BonusPerBatch: 5, VerifiedBadgeAt: 3, EliteBadgeAt: 10, CooldownDays: 7, IPWindowDays: 30, RequireIPHash: true}, got)

		r := b.request(t, http.MethodPatch, "/v1/admin/referrals/settings", `{"cooldown_days": 0, "require_ip_hash": false, "batch_size": 2}`)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		got = decode[api.ReferralSettings](t, r)
		require.NotNil(t, got.UpdatedAt)
		got.UpdatedAt = nil
		require.Equal(t, api.ReferralSettings{BatchSize: 2, BonusPerBatch: 5, VerifiedBadgeAt: 3, EliteBadgeAt: 10, CooldownDays: 0, IPWindowDays: 30}, got)
		require.Equal(t, got, func() api.ReferralSettings {
			s := decode[api.ReferralSettings](t, b.request(t, http.MethodGet, "/v1/admin/referrals/settings", ""))
			s.UpdatedAt = nil
			return s
		}())
		require.Equal(t, 1, recomputeJobs(t, b), "a change enqueues a full recompute")
		var audited int
		require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'referral_settings.update'", b.tenant.ID).Scan(&audited))
		require.Equal(t, 1, audited)
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, body := range []string{
			`{"elite_badge_at": 3}`, `{"verified_badge_at": 10}`, `{"batch_size": 0}`, `{"ip_window_days": 0}`,
			`{"cooldown_days": -1}`, `{"bonus_per_batch": "many"}`, `{"batch_size": 99999999999}`, `[]`,
		} {
			requireProblem(t, b.request(t, http.MethodPatch, "/v1/admin/referrals/settings", body), http.StatusUnprocessableEntity)
		}
		require.Equal(t, 0, recomputeJobs(t, b))
	})
}

func TestCustomerReferrals(t *testing.T) {
	t.Parallel()

	t.Run("Snapshot", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		referrer := referrals(t, b, 3)
		path := "/v1/admin/customers/" + referrer.ID.String() + "/referrals"

		got := decode[api.ReferralSnapshot](t, b.request(t, http.MethodGet, path, ""))
		stored := factory.Now // each subscription's creation recomputed the referrer's reward
		require.Equal(t, api.ReferralSnapshot{
			CustomerID: referrer.ID, ReferredTotal: 3, DisqualifiedCooldown: 3, CooldownDays: 7, ComputedAt: factory.Now, StoredComputedAt: &stored,
		}, got, "the subscriptions are younger than the cooldown")

		b.clock.Advance(8 * day)
		got = decode[api.ReferralSnapshot](t, b.request(t, http.MethodGet, path, ""))
		badge := "verified_referrer"
		require.Equal(t, api.ReferralSnapshot{
			CustomerID: referrer.ID, ReferredTotal: 3, QualifiedTotal: 3, CooldownDays: 7, BonusUnits: 5, Badge: &badge,
			ComputedAt: factory.Now.Add(8 * day), StoredComputedAt: &stored,
		}, got, "live; time alone changed it, so it is stored by the next full recompute")

		other := factory.Customer(t, b.db, b.tenant.ID)
		got = decode[api.ReferralSnapshot](t, b.request(t, http.MethodGet, "/v1/admin/customers/"+other.ID.String()+"/referrals", ""))
		require.Equal(t, api.ReferralSnapshot{CustomerID: other.ID, CooldownDays: 7, ComputedAt: factory.Now.Add(8 * day)}, got)
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/customers/"+uuid.NewString()+"/referrals", ""), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/customers/nope/referrals", ""), http.StatusUnprocessableEntity)
		foreign := factory.Customer(t, b.db, factory.Tenant(t, b.db).ID)
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/customers/"+foreign.ID.String()+"/referrals", ""), http.StatusNotFound)
	})
}

func TestReferralLeaderboard(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var ids []uuid.UUID
	for _, qualified := range []int{2, 11, 0, 2} {
		c := factory.Customer(t, b.db, b.tenant.ID)
		ids = append(ids, c.ID)
		_, err := b.db.Exec(ctx, `INSERT INTO referral_rewards (tenant_id, customer_id, referred_total, qualified_total, disqualified_cooldown,
			disqualified_missing_ip, disqualified_shared_ip, disqualified_duplicate_ip, bonus_units, badge, computed_at)
			VALUES ($1, $2, $3, $3, 0, 0, 0, 0, $3 / 3 * 5, CASE WHEN $3 >= 10 THEN 'elite_referrer'::referral_badge END, $4)`,
			b.tenant.ID, c.ID, qualified, factory.Now)
		require.NoError(t, err)
	}
	tied := []uuid.UUID{ids[0], ids[3]}
	if tied[1].String() < tied[0].String() {
		tied[0], tied[1] = tied[1], tied[0]
	}

	first := decode[api.Page[api.ReferralLeader]](t, b.request(t, http.MethodGet, "/v1/admin/referrals/leaderboard?limit=2", ""))
	require.Len(t, first.Items, 2)
	require.Equal(t, ids[1], first.Items[0].CustomerID)
	require.Equal(t, int32(15), first.Items[0].BonusUnits)
	require.Equal(t, "elite_referrer", *first.Items[0].Badge)
	require.Equal(t, tied[0], first.Items[1].CustomerID)
	require.NotEmpty(t, first.NextCursor)

	second := decode[api.Page[api.ReferralLeader]](t, b.request(t, http.MethodGet, "/v1/admin/referrals/leaderboard?limit=2&after="+first.NextCursor, ""))
	require.Len(t, second.Items, 1, "no referrer without qualified referrals")
	require.Equal(t, tied[1], second.Items[0].CustomerID)
	require.Empty(t, second.NextCursor)
}

func TestReferralRecomputeEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.request(t, http.MethodPost, "/v1/admin/referrals/recompute", "")
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	require.True(t, decode[struct{ Enqueued bool }](t, r).Enqueued)
	r = b.request(t, http.MethodPost, "/v1/admin/referrals/recompute", "")
	require.Equal(t, http.StatusAccepted, r.status)
	require.Equal(t, 1, recomputeJobs(t, b), "unique while one is waiting")
}

// TestReferralMaintained checks that the changes that can move a referrer's count recompute
// that referrer's reward in their transaction, and others do not.
func TestReferralMaintained(t *testing.T) {
	t.Parallel()
	b := setup(t)
	referrer := factory.Customer(t, b.db, b.tenant.ID)

	r := b.request(t, http.MethodPost, "/v1/admin/customers", fmt.Sprintf(`{"email": "r@example.com", "referred_by": %q}`, referrer.ID))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	referral := decode[api.Customer](t, r)
	reward, err := sql.New().ReferralRewardGet(context.Background(), b.db, sql.ReferralRewardGetParams{TenantID: b.tenant.ID, CustomerID: referrer.ID})
	require.NoError(t, err, "a new referral")
	require.Equal(t, int32(1), reward.ReferredTotal)
	require.True(t, factory.Now.Equal(reward.ComputedAt), "computed at %s", reward.ComputedAt)

	forgetRewards(t, b)
	r = b.request(t, http.MethodPatch, "/v1/admin/customers/"+referral.ID.String(), `{"email": "r2@example.com"}`)
	require.Equal(t, http.StatusOK, r.status)
	require.False(t, rewardStored(t, b, referrer.ID), "an email change moves no count")
	r = b.request(t, http.MethodPatch, "/v1/admin/customers/"+referral.ID.String(), `{"is_verified": true}`)
	require.Equal(t, http.StatusOK, r.status)
	require.True(t, rewardStored(t, b, referrer.ID), "verified")

	forgetRewards(t, b)
	policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30), factory.PolicyQualifiesForReferrals())
	sub, _ := factory.Subscription(t, b.db, b.tenant.ID, policy.ID, referral.ID)
	require.True(t, rewardStored(t, b, referrer.ID), "subscribed")

	forgetRewards(t, b)
	r = b.request(t, http.MethodPost, "/v1/admin/subscriptions/"+sub.ID.String()+"/cancel", "")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.True(t, rewardStored(t, b, referrer.ID), "cancelled")

	forgetRewards(t, b)
	factory.Subscription(t, b.db, b.tenant.ID, policy.ID, referrer.ID)
	require.Zero(t, rewardsStored(t, b), "the referrer has no referrer")
	require.Zero(t, allRecomputeJobs(t, b), "maintenance enqueues no job")
}

// TestReferralMaintainedByEvents checks that recording an event recomputes, in its
// transaction, the reward of each referrer whose count it may move — the referrer of a
// customer registering with an IP hash, and a referrer using an IP hash inside the IP window
// — and of nobody else.
func TestReferralMaintainedByEvents(t *testing.T) {
	t.Parallel()
	inWindow := factory.Now.Add(-29 * day).Format(time.RFC3339)
	outsideWindow := factory.Now.Add(-31 * day).Format(time.RFC3339)
	for _, tc := range []struct {
		name       string
		byReferral bool   // the event is the referral's (else the referrer's)
		body       string // the event
		want       bool   // whether the referrer's reward is recomputed
	}{
		{name: "ReferralRegisters", byReferral: true, body: `{"type": "registered", "ip_hash": "h1"}`, want: true},
		{name: "ReferralRegistersWithoutIPHash", byReferral: true, body: `{"type": "registered"}`},
		{name: "ReferralLogsIn", byReferral: true, body: `{"type": "login", "ip_hash": "h1"}`},
		{name: "ReferrerLogsIn", body: `{"type": "login", "ip_hash": "h1"}`, want: true},
		{name: "ReferrerLogsInInsideWindow", body: `{"type": "login", "ip_hash": "h1", "occurred_at": "` + inWindow + `"}`, want: true},
		{name: "ReferrerLogsInOutsideWindow", body: `{"type": "login", "ip_hash": "h1", "occurred_at": "` + outsideWindow + `"}`},
		{name: "ReferrerLogsInWithoutIPHash", body: `{"type": "login"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			referrer := factory.Customer(t, b.db, b.tenant.ID)
			referral := factory.Customer(t, b.db, b.tenant.ID, factory.CustomerReferredBy(referrer.ID))
			who := referrer.ID
			if tc.byReferral {
				who = referral.ID
			}
			r := b.request(t, http.MethodPost, "/v1/admin/customers/"+who.String()+"/events", tc.body)
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			require.Equal(t, tc.want, rewardStored(t, b, referrer.ID))
			require.Equal(t, map[bool]int{true: 1}[tc.want], rewardsStored(t, b), "no other recompute")
		})
	}

	t.Run("NeitherReferralNorReferrer", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := factory.Customer(t, b.db, b.tenant.ID)
		r := b.request(t, http.MethodPost, "/v1/admin/customers/"+c.ID.String()+"/events", `{"type": "registered", "ip_hash": "h1"}`)
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		require.Zero(t, rewardsStored(t, b))
	})

	t.Run("Batch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		referrer := factory.Customer(t, b.db, b.tenant.ID)
		referral := factory.Customer(t, b.db, b.tenant.ID, factory.CustomerReferredBy(referrer.ID))
		other := factory.Customer(t, b.db, b.tenant.ID)
		otherReferral := factory.Customer(t, b.db, b.tenant.ID, factory.CustomerReferredBy(other.ID))
		r := b.request(t, http.MethodPost, "/v1/admin/customer-events/batch", fmt.Sprintf(`{"events": [
			{"customer_id": %q, "type": "registered", "ip_hash": "h1"},
			{"customer_id": %q, "type": "login", "ip_hash": "h2"},
			{"customer_id": %q, "type": "login"},
			{"customer_id": %q, "type": "login", "ip_hash": "h3"}]}`, referral.ID, referrer.ID, other.ID, otherReferral.ID))
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		require.True(t, rewardStored(t, b, referrer.ID), "two events of one referrer")
		require.Equal(t, 1, rewardsStored(t, b), "nothing moves other's count")
	})
}

// TestReferralRecomputeEnqueuedByPolicy checks that turning a policy's
// qualifies_for_referrals on or off enqueues a full recompute in its transaction, and that
// other policy changes do not.
func TestReferralRecomputeEnqueuedByPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30))
	path := "/v1/admin/policies/" + policy.ID.String()
	for _, step := range []struct {
		body string
		want int
	}{
		{`{"name": "Pro"}`, 0},
		{`{"qualifies_for_referrals": false}`, 0},
		{`{"qualifies_for_referrals": true}`, 1},
		{`{"qualifies_for_referrals": true, "name": "Pro 2"}`, 0},
		{`{"qualifies_for_referrals": false}`, 1},
	} {
		r := b.request(t, http.MethodPatch, path, step.body)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, step.want, recomputeJobs(t, b), step.body)
		require.Equal(t, step.want, allRecomputeJobs(t, b), step.body)
		_, err := b.db.Exec(context.Background(), "DELETE FROM river_job WHERE kind = 'referral.recompute'")
		require.NoError(t, err)
	}
}

// allRecomputeJobs counts the referral.recompute jobs enqueued for the bundle's tenant.
func allRecomputeJobs(t *testing.T, b *bundle) int {
	t.Helper()
	var n int
	err := b.db.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE kind = 'referral.recompute' AND args->>'tenant_id' = $1",
		b.tenant.ID.String()).Scan(&n)
	require.NoError(t, err)
	return n
}

// validationAnswer is the body of a validation answer.
type validationAnswer struct {
	Code    string                 `json:"code"`
	License *api.ValidationLicense `json:"license"`
}

// TestValidationReferralBonus checks that a referrer's stored bonus adds to max_machines in
// validation answers and machine activation.
func TestValidationReferralBonus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	customer := factory.Customer(t, b.db, b.tenant.ID)
	policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyMaxMachines(1))
	license := factory.License(t, b.db, b.tenant.ID, policy.ID, customer.ID)
	validate := func() api.ValidationLicense {
		r := b.request(t, http.MethodPost, "/v1/licenses/validate", fmt.Sprintf(`{"key": %q}`, license.Key))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		return *decode[validationAnswer](t, r).License
	}
	require.Equal(t, int32(1), *validate().MaxMachines)

	_, err := b.db.Exec(context.Background(), `INSERT INTO referral_rewards (tenant_id, customer_id, referred_total, qualified_total, disqualified_cooldown,
		disqualified_missing_ip, disqualified_shared_ip, disqualified_duplicate_ip, bonus_units, badge, computed_at)
		VALUES ($1, $2, 3, 3, 0, 0, 0, 0, 5, 'verified_referrer', $3)`, b.tenant.ID, customer.ID, factory.Now)
	require.NoError(t, err)
	got := validate()
	require.Equal(t, int32(6), *got.MaxMachines)
	require.Equal(t, int32(5), got.ReferralBonusMachines)

	for i := range 6 {
		r := b.request(t, http.MethodPost, "/v1/machines/activate", fmt.Sprintf(`{"key": %q, "fingerprint": "fp-%d"}`, license.Key, i))
		require.Equal(t, http.StatusCreated, r.status, "machine %d: %s", i, r.body)
	}
	r := b.request(t, http.MethodPost, "/v1/machines/activate", fmt.Sprintf(`{"key": %q, "fingerprint": "fp-7"}`, license.Key))
	// The refusal names the effective limit, bonus included (it once said "all 1").
	require.Contains(t, requireCode(t, r, http.StatusConflict, api.CodeMachineLimit).Detail, "all 6 machine slots")
	require.Equal(t, "VALID", decode[validationAnswer](t, b.request(t, http.MethodPost, "/v1/licenses/validate", fmt.Sprintf(`{"key": %q}`, license.Key))).Code)
}
