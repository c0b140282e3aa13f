package jobs

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// workSweep runs one job of args through w in tx and requires that it completed.
func workSweep[T river.JobArgs](t *testing.T, tx pgx.Tx, w river.Worker[T], args T) {
	t.Helper()
	res, err := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{Logger: slog.New(slog.DiscardHandler)}, w).
		Work(context.Background(), t, tx, args, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
}

// nextRuns counts the jobs of kind waiting to run in tx: the next runs a sweep enqueued.
func nextRuns(t *testing.T, tx pgx.Tx, kind string) int {
	t.Helper()
	var n int
	require.NoError(t, tx.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'available'", kind).Scan(&n))
	return n
}

// everyBatch is batches of n rows for every sweep.
func everyBatch(n int) SweepBatches {
	return SweepBatches{IdempotencyExpire: n, EventRetention: n, LicenseExpire: n, SubscriptionRenew: n, SubscriptionLapse: n, PayInReconcile: n}
}

// TestSweepContinuesWhenFull runs every batched sweep on one due row: with a batch of one the
// batch was full, so the sweep enqueues its next run in its transaction (the renewal sweep,
// which runs renewSweepsAtOnce at a time, that many); with a batch of two it was not, so no
// next run is enqueued.
func TestSweepContinuesWhenFull(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name string
		// arrange makes one row due for the sweep at now.
		arrange func(t *testing.T, tx pgx.Tx, now time.Time)
		// work runs one job of the sweep with cfg.
		work func(t *testing.T, tx pgx.Tx, cfg Config)
		kind string
		// atOnce is how many next runs a full batch enqueues when none waits; zero is one.
		atOnce int
	}{
		{
			name: "IdempotencyExpireSweep",
			arrange: func(t *testing.T, tx pgx.Tx, now time.Time) {
				tenant := factory.Tenant(t, tx)
				require.NoError(t, queries.IdempotencyKeyStore(context.Background(), tx, sql.IdempotencyKeyStoreParams{
					TenantID: tenant.ID, Scope: "admin", Key: "expired", RequestHash: make([]byte, 32), ResponseStatus: 201,
					ResponseHeaders: []byte(`{}`), ResponseBody: []byte(`{}`), Now: now.Add(-2 * day), ExpiresAt: now.Add(-day),
				}))
			},
			work: func(t *testing.T, tx pgx.Tx, cfg Config) {
				workSweep(t, tx, &IdempotencyExpireSweepWorker{cfg: cfg}, jobargs.IdempotencyExpireSweep{})
			},
			kind: jobargs.IdempotencyExpireSweep{}.Kind(),
		},
		{
			name: "EventRetentionSweep",
			arrange: func(t *testing.T, tx pgx.Tx, now time.Time) {
				tenant := factory.Tenant(t, tx)
				require.NoError(t, core.Emit(context.Background(), tx, core.Step{Jobs: factory.Jobs, Now: now.Add(-31 * day)}, core.Event{TenantID: tenant.ID, Data: core.LicenseExpiredEvent{}}))
			},
			work: func(t *testing.T, tx pgx.Tx, cfg Config) {
				workSweep(t, tx, &EventRetentionSweepWorker{cfg: cfg}, jobargs.EventRetentionSweep{})
			},
			kind: jobargs.EventRetentionSweep{}.Kind(),
		},
		{
			name: "LicenseExpireSweep",
			arrange: func(t *testing.T, tx pgx.Tx, now time.Time) {
				tenant := factory.Tenant(t, tx)
				expired := now.Add(-time.Hour)
				factory.License(t, tx, tenant.ID, factory.Policy(t, tx, tenant.ID).ID, factory.Customer(t, tx, tenant.ID).ID,
					func(p *core.LicenseIssueParams) { p.ExpiresAt = &expired })
			},
			work: func(t *testing.T, tx pgx.Tx, cfg Config) {
				workSweep(t, tx, &LicenseExpireSweepWorker{cfg: cfg}, jobargs.LicenseExpireSweep{})
			},
			kind: jobargs.LicenseExpireSweep{}.Kind(),
		},
		{
			name: "SubscriptionRenewSweep",
			arrange: func(t *testing.T, tx pgx.Tx, _ time.Time) {
				dueSubscription(t, tx)
			},
			work: func(t *testing.T, tx pgx.Tx, cfg Config) {
				workSweep(t, tx, &SubscriptionRenewSweepWorker{cfg: cfg}, jobargs.SubscriptionRenewSweep{})
			},
			kind:   jobargs.SubscriptionRenewSweep{}.Kind(),
			atOnce: renewSweepsAtOnce,
		},
		{
			name: "SubscriptionLapseSweep",
			arrange: func(t *testing.T, tx pgx.Tx, _ time.Time) {
				sub := dueSubscription(t, tx)
				_, err := tx.Exec(context.Background(), "UPDATE subscriptions SET status = 'past_due' WHERE tenant_id = $1 AND id = $2", sub.TenantID, sub.ID)
				require.NoError(t, err)
			},
			work: func(t *testing.T, tx pgx.Tx, cfg Config) {
				workSweep(t, tx, &SubscriptionLapseSweepWorker{cfg: cfg}, jobargs.SubscriptionLapseSweep{})
			},
			kind: jobargs.SubscriptionLapseSweep{}.Kind(),
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range []struct {
				name  string
				batch int
				want  int
			}{
				{name: "Full", batch: 1, want: max(1, tt.atOnce)},
				{name: "NotFull", batch: 2, want: 0},
			} {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					tx := testdb.Tx(t)
					clk := clock.NewManual(factory.Now.Add(31 * day))
					tt.arrange(t, tx, clk.Now())
					tt.work(t, tx, Config{DB: tx, Clock: clk, Log: slog.New(slog.DiscardHandler), Box: factory.Box, Rates: factory.Rates(t), Batches: everyBatch(c.batch)})
					require.Equal(t, c.want, nextRuns(t, tx, tt.kind))
				})
			}
		})
	}

	t.Run("RenewSweepsTopUpToAtOnce", func(t *testing.T) {
		t.Parallel()
		kind := jobargs.SubscriptionRenewSweep{}.Kind()
		for _, c := range []struct {
			name             string
			waiting, enqueue int
		}{
			{name: "SomeWaiting", waiting: renewSweepsAtOnce - 2, enqueue: 2},
			{name: "AsManyWaiting", waiting: renewSweepsAtOnce, enqueue: 1}, // at least one: the others may find their picks held
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				tx := testdb.Tx(t)
				clk := clock.NewManual(factory.Now.Add(31 * day))
				dueSubscription(t, tx)
				client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
				require.NoError(t, err)
				for range c.waiting {
					_, err := client.InsertTx(context.Background(), tx, jobargs.SubscriptionRenewSweep{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{}})
					require.NoError(t, err)
				}
				cfg := Config{DB: tx, Clock: clk, Log: slog.New(slog.DiscardHandler), Box: factory.Box, Rates: factory.Rates(t), Batches: everyBatch(1)}
				workSweep(t, tx, &SubscriptionRenewSweepWorker{cfg: cfg}, jobargs.SubscriptionRenewSweep{})
				require.Equal(t, c.waiting+c.enqueue, nextRuns(t, tx, kind))
			})
		}
	})

	t.Run("UnbatchedNeverContinues", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		factory.Tenant(t, tx)
		cfg := Config{DB: tx, Clock: clock.NewManual(factory.Now), Log: slog.New(slog.DiscardHandler), Box: factory.Box, Rates: factory.Rates(t), Batches: everyBatch(1)}
		workSweep(t, tx, &ReferralRecomputeSweepWorker{cfg: cfg}, jobargs.ReferralRecomputeSweep{})
		require.Equal(t, 0, nextRuns(t, tx, jobargs.ReferralRecomputeSweep{}.Kind()), "a sweep of every tenant at once")
	})
}

// dueSubscription starts a 30-day subscription at factory.Now, priced in sats with no grace
// days: due for renewal 31 days after factory.Now.
func dueSubscription(t *testing.T, db pg.DB) sql.Subscription {
	t.Helper()
	tenant := factory.Tenant(t, db)
	policy := factory.Policy(t, db, tenant.ID, factory.PolicyRecurring(30), factory.PolicyPrice(sql.CurrencySAT, 1000), factory.PolicyGraceDays(0))
	sub, _ := factory.Subscription(t, db, tenant.ID, policy.ID, factory.Customer(t, db, tenant.ID).ID)
	return sub
}
