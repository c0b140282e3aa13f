package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// world builds a refWorld whose customer 0 is the referrer, at factory.Now.
type world struct{ refWorld }

func newWorld() *world {
	return &world{refWorld{Customers: []refCustomer{{ReferredBy: -1, Active: true, Verified: true, CreatedAt: factory.Now.Add(-90 * day)}}}}
}

// ref adds a referral of customer 0 that qualifies unless opts say otherwise: active,
// verified, 30 days old, registered from ip (none when ""), with an active subscription
// started 30 days ago on a qualifying policy, without expiry.
func (w *world) ref(ip string, opts ...func(*world, int)) *world {
	i := len(w.Customers)
	w.Customers = append(w.Customers, refCustomer{ReferredBy: 0, Active: true, Verified: true, CreatedAt: factory.Now.Add(-30 * day)})
	w.Events = append(w.Events, refEvent{Customer: i, Type: "registered", IP: ip, OccurredAt: factory.Now.Add(-30 * day)})
	w.Subscriptions = append(w.Subscriptions, refSubscription{Customer: i, Qualifying: true, Status: sql.SubscriptionStatusActive, CreatedAt: factory.Now.Add(-30 * day)})
	for _, opt := range opts {
		opt(w, i)
	}
	return w
}

// refs adds n qualifying referrals with distinct IP hashes.
func (w *world) refs(n int) *world {
	for range n {
		w.ref(fmt.Sprintf("ip-%d", len(w.Customers)))
	}
	return w
}

// referrerIP records an event of the referrer from ip at now+offset.
func (w *world) referrerIP(ip string, offset time.Duration) *world {
	w.Events = append(w.Events, refEvent{Customer: 0, Type: "login", IP: ip, OccurredAt: factory.Now.Add(offset)})
	return w
}

func inactive(w *world, i int)   { w.Customers[i].Active = false }
func unverified(w *world, i int) { w.Customers[i].Verified = false }
func noSubscription(w *world, i int) {
	w.Subscriptions = w.Subscriptions[:len(w.Subscriptions)-1]
}
func nonQualifying(w *world, i int) { w.Subscriptions[len(w.Subscriptions)-1].Qualifying = false }
func status(s sql.SubscriptionStatus) func(*world, int) {
	return func(w *world, i int) { w.Subscriptions[len(w.Subscriptions)-1].Status = s }
}
func expiresIn(d time.Duration) func(*world, int) {
	return func(w *world, i int) {
		at := factory.Now.Add(d)
		w.Subscriptions[len(w.Subscriptions)-1].ExpiresAt = &at
	}
}
func createdAgo(d time.Duration) func(*world, int) {
	return func(w *world, i int) { w.Customers[i].CreatedAt = factory.Now.Add(-d) }
}
func subscribedAgo(d time.Duration) func(*world, int) {
	return func(w *world, i int) { w.Subscriptions[len(w.Subscriptions)-1].CreatedAt = factory.Now.Add(-d) }
}
func secondSubscription(ago time.Duration) func(*world, int) {
	return func(w *world, i int) {
		w.Subscriptions = append(w.Subscriptions, refSubscription{Customer: i, Qualifying: true, Status: sql.SubscriptionStatusActive, CreatedAt: factory.Now.Add(-ago)})
	}
}
func eventWithoutRegistered(w *world, i int) {
	w.Events[len(w.Events)-1].Type = "login"
}

// TestReferralScenarios is one scenario per rule and disqualification reason of SPEC 6: each
// checks the live snapshot, the seed transcription and the stored reward after a recompute.
func TestReferralScenarios(t *testing.T) {
	t.Parallel()
	noCooldown := defaultRefSettings
	noCooldown.CooldownDays = 0
	ipOptional := defaultRefSettings
	ipOptional.RequireIP = false
	custom := refSettings{BatchSize: 2, BonusPerBatch: 1, VerifiedAt: 1, EliteAt: 2, CooldownDays: 7, IPWindowDays: 1, RequireIP: true}

	type want = refSnapshot
	for _, tc := range []struct {
		name     string
		world    *world
		settings refSettings
		want     want
	}{
		{"Qualifies", newWorld().ref("a"), defaultRefSettings, want{ReferredTotal: 1, Qualified: 1}},
		{"Inactive", newWorld().ref("a", inactive), defaultRefSettings, want{ReferredTotal: 1}},
		{"Unverified", newWorld().ref("a", unverified), defaultRefSettings, want{ReferredTotal: 1}},
		{"NoSubscription", newWorld().ref("a", noSubscription), defaultRefSettings, want{ReferredTotal: 1}},
		{"PolicyNotQualifying", newWorld().ref("a", nonQualifying), defaultRefSettings, want{ReferredTotal: 1}},
		{"PastDueQualifies", newWorld().ref("a", status(sql.SubscriptionStatusPastDue)), defaultRefSettings, want{ReferredTotal: 1, Qualified: 1}},
		{"LapsedDoesNot", newWorld().ref("a", status(sql.SubscriptionStatusLapsed)), defaultRefSettings, want{ReferredTotal: 1}},
		{"CancelledDoesNot", newWorld().ref("a", status(sql.SubscriptionStatusCancelled)), defaultRefSettings, want{ReferredTotal: 1}},
		{"ExpiredDoesNot", newWorld().ref("a", expiresIn(-time.Second)), defaultRefSettings, want{ReferredTotal: 1}},
		{"ExpiringNowQualifies", newWorld().ref("a", expiresIn(0)), defaultRefSettings, want{ReferredTotal: 1, Qualified: 1}},
		{"AccountInCooldown", newWorld().ref("a", createdAgo(7*day-time.Second)), defaultRefSettings, want{ReferredTotal: 1, Cooldown: 1}},
		{"SubscriptionInCooldown", newWorld().ref("a", subscribedAgo(6*day)), defaultRefSettings, want{ReferredTotal: 1, Cooldown: 1}},
		{"CooldownBoundaryQualifies", newWorld().ref("a", createdAgo(7*day), subscribedAgo(7*day)), defaultRefSettings, want{ReferredTotal: 1, Qualified: 1}},
		{"CooldownZero", newWorld().ref("a", createdAgo(time.Hour), subscribedAgo(time.Minute)), noCooldown, want{ReferredTotal: 1, Qualified: 1}},
		{"CooldownBeforeMissingIP", newWorld().ref("", createdAgo(day)), defaultRefSettings, want{ReferredTotal: 1, Cooldown: 1}},
		{"MissingIP", newWorld().ref(""), defaultRefSettings, want{ReferredTotal: 1, MissingIP: 1}},
		{"IPOnlyOnOtherEvents", newWorld().ref("a", eventWithoutRegistered), defaultRefSettings, want{ReferredTotal: 1, MissingIP: 1}},
		{"IPNotRequired", newWorld().ref("").ref("").ref("a"), ipOptional, want{ReferredTotal: 3, Qualified: 3, Bonus: 5, Badge: "verified_referrer"}},
		{"SharedIPInWindow", newWorld().ref("a").referrerIP("a", -29*day), defaultRefSettings, want{ReferredTotal: 1, SharedIP: 1}},
		{"SharedIPAtWindowStart", newWorld().ref("a").referrerIP("a", -30*day), defaultRefSettings, want{ReferredTotal: 1, SharedIP: 1}},
		{"SharedIPBeforeWindow", newWorld().ref("a").referrerIP("a", -30*day-time.Second), defaultRefSettings, want{ReferredTotal: 1, Qualified: 1}},
		{"SharedIPAfterNow", newWorld().ref("a").referrerIP("a", time.Second), defaultRefSettings, want{ReferredTotal: 1, Qualified: 1}},
		{"SharedIPNotRequiredMissing", newWorld().ref("").referrerIP("a", -day), ipOptional, want{ReferredTotal: 1, Qualified: 1}},
		{"DuplicateIPTie", newWorld().ref("a").ref("a"), defaultRefSettings, want{ReferredTotal: 2, Qualified: 1, DuplicateIP: 1}},
		{"DuplicateIPThree", newWorld().ref("a").ref("a").ref("a").ref("b"), defaultRefSettings, want{ReferredTotal: 4, Qualified: 2, DuplicateIP: 2}},
		{"SharedBeforeDuplicate", newWorld().ref("a").ref("a").referrerIP("a", -day), defaultRefSettings, want{ReferredTotal: 2, SharedIP: 2}},
		{"DuplicateOfCooldownCounts", newWorld().ref("a", createdAgo(day)).ref("a"), defaultRefSettings, want{ReferredTotal: 2, Qualified: 1, Cooldown: 1}},
		{"TwoSubscriptionsCountOnce", newWorld().ref("a", secondSubscription(40*day)), defaultRefSettings, want{ReferredTotal: 1, Qualified: 1}},
		{"EarliestSubscriptionDecidesCooldown", newWorld().ref("a", subscribedAgo(day), secondSubscription(20*day)), defaultRefSettings, want{ReferredTotal: 1, Qualified: 1}},
		{"Batch2", newWorld().refs(2), defaultRefSettings, want{ReferredTotal: 2, Qualified: 2}},
		{"Batch3", newWorld().refs(3), defaultRefSettings, want{ReferredTotal: 3, Qualified: 3, Bonus: 5, Badge: "verified_referrer"}},
		{"Batch5", newWorld().refs(5), defaultRefSettings, want{ReferredTotal: 5, Qualified: 5, Bonus: 5, Badge: "verified_referrer"}},
		{"Batch6", newWorld().refs(6), defaultRefSettings, want{ReferredTotal: 6, Qualified: 6, Bonus: 10, Badge: "verified_referrer"}},
		{"Batch9", newWorld().refs(9), defaultRefSettings, want{ReferredTotal: 9, Qualified: 9, Bonus: 15, Badge: "verified_referrer"}},
		{"Batch10Elite", newWorld().refs(10), defaultRefSettings, want{ReferredTotal: 10, Qualified: 10, Bonus: 15, Badge: "elite_referrer"}},
		{"CustomSettings", newWorld().refs(3).referrerIP("x", -2*day).ref("x"), custom, want{ReferredTotal: 4, Qualified: 4, Bonus: 2, Badge: "elite_referrer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tx := testdb.Tx(t)
			l := load(t, tx, tc.world.refWorld, tc.settings)

			require.Equal(t, tc.want, seedSnapshot(tc.world.refWorld, tc.settings, factory.Now, 0, inOrder), "seed transcription")
			require.Equal(t, map[int]refSnapshot{0: tc.want}, sqlSnapshots(t, tx, l, factory.Now), "live snapshot")

			st := core.Step{Now: factory.Now, Actor: factory.Actor, Box: factory.Box, Jobs: factory.Jobs}
			res, err := ReferralRecompute(context.Background(), tx, st, jobargs.ReferralRecompute{TenantID: l.tenant.ID})
			require.NoError(t, err)
			require.Equal(t, 1, res.Processed)
			require.Equal(t, 1, res.Updated)
			require.Equal(t, map[int]refSnapshot{0: tc.want}, storedSnapshots(t, tx, l), "stored reward")
		})
	}
}

// genWorld draws a small tenant: customers referring each other, registered and other
// events from a few IP hashes, subscriptions in every status, at times on and around the
// rules' boundaries.
func genWorld(t *rapid.T) (refWorld, refSettings, func(int) []int) {
	offsets := []time.Duration{0, -time.Second, -day, -7*day + time.Second, -7 * day, -7*day - time.Second,
		-30*day + time.Second, -30 * day, -30*day - time.Second, -60 * day, time.Second, day}
	at := func(label string) time.Time {
		return factory.Now.Add(rapid.SampledFrom(offsets).Draw(t, label))
	}
	ips := []string{"", "a", "b", "c", "A", "ab"}
	var w refWorld
	n := rapid.IntRange(1, 14).Draw(t, "customers")
	for i := range n {
		referrer := -1
		if i > 0 && rapid.IntRange(0, 4).Draw(t, "referred") > 0 {
			referrer = rapid.IntRange(0, min(i-1, 2)).Draw(t, "referrer")
		}
		w.Customers = append(w.Customers, refCustomer{
			ReferredBy: referrer, Active: rapid.IntRange(0, 5).Draw(t, "active") > 0,
			Verified: rapid.IntRange(0, 5).Draw(t, "verified") > 0, CreatedAt: at("created"),
		})
	}
	for range rapid.IntRange(0, 3*n).Draw(t, "events") {
		w.Events = append(w.Events, refEvent{
			Customer: rapid.IntRange(0, n-1).Draw(t, "event customer"), Type: rapid.SampledFrom([]string{"registered", "login"}).Draw(t, "type"),
			IP: rapid.SampledFrom(ips).Draw(t, "ip"), OccurredAt: at("occurred"),
		})
	}
	for range rapid.IntRange(0, 2*n).Draw(t, "subscriptions") {
		sub := refSubscription{
			Customer: rapid.IntRange(0, n-1).Draw(t, "subscriber"), Qualifying: rapid.IntRange(0, 4).Draw(t, "qualifying") > 0,
			Status: rapid.SampledFrom([]sql.SubscriptionStatus{sql.SubscriptionStatusActive, sql.SubscriptionStatusPastDue,
				sql.SubscriptionStatusLapsed, sql.SubscriptionStatusCancelled}).Draw(t, "status"),
			CreatedAt: at("started"),
		}
		if rapid.Bool().Draw(t, "expires") {
			e := at("expiry")
			sub.ExpiresAt = &e
		}
		w.Subscriptions = append(w.Subscriptions, sub)
	}
	s := refSettings{
		BatchSize: rapid.IntRange(1, 4).Draw(t, "batch"), BonusPerBatch: rapid.IntRange(0, 7).Draw(t, "bonus"),
		VerifiedAt: rapid.IntRange(1, 3).Draw(t, "verified at"), CooldownDays: rapid.SampledFrom([]int{0, 1, 7}).Draw(t, "cooldown"),
		IPWindowDays: rapid.SampledFrom([]int{1, 7, 30}).Draw(t, "window"), RequireIP: rapid.Bool().Draw(t, "require ip"),
	}
	s.EliteAt = s.VerifiedAt + rapid.IntRange(1, 4).Draw(t, "elite above")
	seed := rapid.Int64().Draw(t, "order")
	order := func(k int) []int { // a permutation of the candidate rows drawn from seed
		p := inOrder(k)
		x := uint64(seed)
		for i := k - 1; i > 0; i-- {
			x = x*6364136223846793005 + 1442695040888963407
			j := int(x>>33) % (i + 1)
			p[i], p[j] = p[j], p[i]
		}
		return p
	}
	return w, s, order
}

// TestReferralRecomputeMatchesSeed is the differential property test: on random tenants'
// data, the set-based SQL's snapshot of every referrer equals the seed's per-referrer
// algorithm (whatever order it reads the rows in), and so do the stored rewards after a
// full recompute; a second recompute then writes nothing.
func TestReferralRecomputeMatchesSeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	outer := testdb.Tx(t)
	rapid.Check(t, func(rt *rapid.T) {
		w, s, order := genWorld(rt)
		tx, err := outer.Begin(ctx) // a savepoint per example, rolled back after it
		require.NoError(rt, err)
		defer func() { _ = tx.Rollback(ctx) }()
		l := load(t, tx, w, s)
		want := modelSnapshots(w, s, factory.Now, order)
		require.Equal(rt, want, sqlSnapshots(t, tx, l, factory.Now), "live snapshot")

		st := core.Step{Now: factory.Now, Actor: factory.Actor, Box: factory.Box, Jobs: factory.Jobs}
		res, err := ReferralRecompute(ctx, tx, st, jobargs.ReferralRecompute{TenantID: l.tenant.ID})
		require.NoError(rt, err)
		require.Equal(rt, len(want), res.Processed)
		require.Equal(rt, want, storedSnapshots(t, tx, l), "stored rewards")
		again, err := ReferralRecompute(ctx, tx, st, jobargs.ReferralRecompute{TenantID: l.tenant.ID})
		require.NoError(rt, err)
		require.Equal(rt, core.ReferralRecomputeResult{Processed: len(want)}, again, "a second recompute changes nothing")
	})
}

// TestReferralRecomputeWorker runs referral.recompute jobs: a full one stores rewards,
// emits referral.reward_changed for bonus and badge changes only, leaves the transaction's
// planner settings as they were, and a second run updates nothing; a single-referrer one
// follows a change of that referrer's referrals.
func TestReferralRecomputeWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	t.Cleanup(func() { factory.RequireEventsDocumented(t, tx) })
	clk := clock.NewManual(factory.Now)
	worker := &ReferralRecomputeWorker{cfg: Config{DB: tx, Clock: clk, Log: slog.New(slog.DiscardHandler), Box: factory.Box}}
	w := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, worker)

	world := newWorld().refs(3).ref("a", createdAgo(day))
	world.Customers = append(world.Customers, refCustomer{ReferredBy: -1, Active: true, Verified: true, CreatedAt: factory.Now})
	w2 := len(world.Customers) - 1 // a second referrer with one referral that does not qualify
	world.Customers = append(world.Customers, refCustomer{ReferredBy: w2, Active: true, Verified: false, CreatedAt: factory.Now.Add(-30 * day)})
	l := load(t, tx, world.refWorld, defaultRefSettings)
	events := func() int {
		var n, marked int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'referral.reward_changed'", l.tenant.ID).Scan(&n))
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM referral_rewards WHERE tenant_id = $1 AND announce", l.tenant.ID).Scan(&marked))
		require.Zero(t, marked, "every changed reward was announced")
		return n
	}

	res, err := w.Work(ctx, t, tx, jobargs.ReferralRecompute{TenantID: l.tenant.ID}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
	require.Equal(t, map[int]refSnapshot{
		0:  {ReferredTotal: 4, Qualified: 3, Cooldown: 1, Bonus: 5, Badge: "verified_referrer"},
		w2: {ReferredTotal: 1},
	}, storedSnapshots(t, tx, l))
	require.Equal(t, 1, events(), "only the referrer whose bonus and badge changed")
	var nestloop string
	require.NoError(t, tx.QueryRow(ctx, "SHOW enable_nestloop").Scan(&nestloop))
	require.Equal(t, "on", nestloop, "the store turns nested loops off for its computation only")

	st := core.Step{Now: clk.Now(), Actor: factory.Actor, Box: factory.Box, Jobs: factory.Jobs}
	again, err := ReferralRecompute(ctx, tx, st, jobargs.ReferralRecompute{TenantID: l.tenant.ID})
	require.NoError(t, err)
	require.Equal(t, core.ReferralRecomputeResult{Processed: 2}, again)

	// A week later the fourth referral is out of its cooldown: the single recompute of the
	// referrer stores it (counts change, the reward does not: no event).
	clk.Advance(7 * day)
	_, err = w.Work(ctx, t, tx, jobargs.ReferralRecompute{TenantID: l.tenant.ID, ReferrerID: &l.ids[0]}, nil)
	require.NoError(t, err)
	require.Equal(t, refSnapshot{ReferredTotal: 4, Qualified: 4, Bonus: 5, Badge: "verified_referrer"}, storedSnapshots(t, tx, l)[0])
	require.Equal(t, 1, events())

	// The referral deactivated: back to 3 qualified, same reward.
	_, err = tx.Exec(ctx, "UPDATE customers SET is_active = false WHERE tenant_id = $1 AND id = $2", l.tenant.ID, l.ids[1])
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE customers SET is_active = false WHERE tenant_id = $1 AND id = $2", l.tenant.ID, l.ids[2])
	require.NoError(t, err)
	_, err = w.Work(ctx, t, tx, jobargs.ReferralRecompute{TenantID: l.tenant.ID, ReferrerID: &l.ids[0]}, nil)
	require.NoError(t, err)
	require.Equal(t, refSnapshot{ReferredTotal: 4, Qualified: 2}, storedSnapshots(t, tx, l)[0])
	require.Equal(t, 2, events(), "the bonus and badge went away")
	var data map[string]any
	require.NoError(t, tx.QueryRow(ctx, "SELECT data FROM events WHERE tenant_id = $1 AND type = 'referral.reward_changed' ORDER BY id DESC LIMIT 1", l.tenant.ID).Scan(&data))
	require.Equal(t, map[string]any{
		"customer_id": l.ids[0].String(), "qualified_total": float64(2), "bonus_units": float64(0), "badge": nil,
		"previous_bonus_units": float64(5), "previous_badge": "verified_referrer",
	}, data)
}

// TestReferralRecomputeSweepWorker enqueues a full recompute per tenant.
func TestReferralRecomputeSweepWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	worker := &ReferralRecomputeSweepWorker{cfg: Config{DB: tx, Clock: clock.NewManual(factory.Now), Log: slog.New(slog.DiscardHandler), Box: factory.Box}}
	w := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, worker)
	tenant := factory.Tenant(t, tx)

	_, err := w.Work(ctx, t, tx, jobargs.ReferralRecomputeSweep{}, nil)
	require.NoError(t, err)
	var n int
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'referral.recompute' AND args->>'tenant_id' = $1 AND NOT args ? 'referrer_id'",
		tenant.ID.String()).Scan(&n))
	require.Equal(t, 1, n)
}

// TestReferralRecomputeConcurrent runs full and single-referrer recomputes of one tenant at
// once on separate connections: whatever the interleaving, the final stored rewards equal
// the live snapshot, and each reward change is announced once.
func TestReferralRecomputeConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testdb.Clone(t)
	world := newWorld().refs(7).ref("dup-1").ref("dup-1")
	world.Customers = append(world.Customers, refCustomer{ReferredBy: -1, Active: true, Verified: true, CreatedAt: factory.Now})
	second := len(world.Customers) - 1
	for range 4 {
		i := len(world.Customers)
		world.Customers = append(world.Customers, refCustomer{ReferredBy: second, Active: true, Verified: true, CreatedAt: factory.Now.Add(-30 * day)})
		world.Events = append(world.Events, refEvent{Customer: i, Type: "registered", IP: fmt.Sprint("s-", i), OccurredAt: factory.Now.Add(-30 * day)})
		world.Subscriptions = append(world.Subscriptions, refSubscription{Customer: i, Qualifying: true, Status: sql.SubscriptionStatusActive, CreatedAt: factory.Now.Add(-30 * day)})
	}
	var l loaded
	require.NoError(t, pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		l = load(t, tx, world.refWorld, defaultRefSettings)
		return nil
	}))

	st := core.Step{Now: factory.Now, Actor: factory.Actor, Box: factory.Box, Jobs: factory.Jobs}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var referrer *uuid.UUID
			switch i % 3 {
			case 1:
				referrer = &l.ids[0]
			case 2:
				referrer = &l.ids[second]
			}
			errs <- pg.InTx(ctx, pool, func(tx pgx.Tx) error {
				_, err := ReferralRecompute(ctx, tx, st, jobargs.ReferralRecompute{TenantID: l.tenant.ID, ReferrerID: referrer})
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		want := modelSnapshots(world.refWorld, defaultRefSettings, factory.Now, inOrder)
		require.Equal(t, want, sqlSnapshots(t, tx, l, factory.Now))
		require.Equal(t, want, storedSnapshots(t, tx, l))
		var events int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'referral.reward_changed'", l.tenant.ID).Scan(&events))
		require.Equal(t, 2, events, "one announcement per referrer whose reward changed")
		return nil
	}))
}
