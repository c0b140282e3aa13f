package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/fakestore"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// operatorWait bounds every wait for a River client's work in the operator tests: long
// enough for River's rescuer (every 30 s) to rescue a job orphaned past its timeout.
const operatorWait = 90 * time.Second

// operator is a River client working Tessera's jobs on its own database, as `tessera worker`
// does (without the periodic schedule, so that only the test's jobs run), and the clock of
// the jobs: 31 days after factory.Now.
type operator struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	clock  *clock.Manual
	client *river.Client[pgx.Tx]
}

func setupOperator(t *testing.T, rc RevocationConfig) *operator {
	t.Helper()
	ctx := context.Background()
	pool, _ := testdb.Clone(t)
	clk := clock.NewManual(factory.Now.Add(31 * day))
	log := slog.New(slog.DiscardHandler)
	if rc.Timeout == 0 {
		rc.Timeout = time.Second
	}
	cfg := Config{DB: pool, Clock: clk, Log: log, Box: factory.Box, Payments: factory.FakeBTCPay(t, "").Client,
		Rates: factory.Rates(t), Revocation: rc, AllowPrivateNetworks: true, JobTimeout: 10 * time.Second, WebhookTimeout: time.Second}
	workers, err := Workers(cfg)
	require.NoError(t, err)
	longest, err := LongestTimeout(cfg)
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}, jobargs.QueueWebhooks: {MaxWorkers: 1}},
		Workers: workers, Logger: log, FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond, TestOnly: true,
		// As serve does: a job left running by a lost fetch (under load, the fetch's
		// update can commit while the client gives up on its answer) is rescued, not left
		// running for River's default hour.
		JobTimeout: cfg.JobTimeout, RescueStuckJobsAfter: longest + time.Second,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.WithoutCancel(ctx))) })
	return &operator{ctx: ctx, pool: pool, clock: clk, client: client}
}

// waiting inserts args to run in an hour: a job an operator can act on before it runs.
func (o *operator) waiting(t *testing.T, args river.JobArgs) *rivertype.JobRow {
	t.Helper()
	res, err := o.client.Insert(o.ctx, args, &river.InsertOpts{ScheduledAt: clock.System{}.Now().Add(time.Hour)})
	require.NoError(t, err)
	require.False(t, res.UniqueSkippedAsDuplicate)
	return res.Job
}

// cancelled is a waiting job of args cancelled through River's client, as River UI does.
func (o *operator) cancelled(t *testing.T, args river.JobArgs) *rivertype.JobRow {
	t.Helper()
	job, err := o.client.JobCancel(o.ctx, o.waiting(t, args).ID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCancelled, job.State)
	return job
}

// discarded is a job of args that failed its last attempt.
func (o *operator) discarded(t *testing.T, args river.JobArgs) *rivertype.JobRow {
	t.Helper()
	job := o.waiting(t, args)
	_, err := o.pool.Exec(o.ctx, `UPDATE river_job SET state = 'discarded', attempt = max_attempts, finalized_at = now(),
		errors = ARRAY['{"error": "the last attempt failed"}'::jsonb] WHERE id = $1`, job.ID)
	require.NoError(t, err)
	return job
}

// retry retries job through River's client, as River UI's Retry does, and waits until it
// has completed.
//
// River sends a cancel to its producers asynchronously: a job retried within moments of its
// cancel can receive that cancel once it runs ("cancelled remotely"). An operator's Retry
// comes later than that; here such a run is retried again, as the operator would.
func (o *operator) retry(t *testing.T, job *rivertype.JobRow) {
	t.Helper()
	_, err := o.client.JobRetry(o.ctx, job.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := o.client.JobGet(o.ctx, job.ID)
		if err != nil {
			return false
		}
		if got.State == rivertype.JobStateCancelled {
			_, err = o.client.JobRetry(o.ctx, job.ID)
			require.NoError(t, err)
		}
		return got.State == rivertype.JobStateCompleted
	}, operatorWait, 20*time.Millisecond, "job %d did not complete", job.ID)
}

// completed waits until job id has completed.
func (o *operator) completed(t *testing.T, id int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		job, err := o.client.JobGet(o.ctx, id)
		return err == nil && job.State == rivertype.JobStateCompleted
	}, operatorWait, 20*time.Millisecond, "job %d did not complete", id)
}

// count runs a count query.
func (o *operator) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, o.pool.QueryRow(o.ctx, query, args...).Scan(&n))
	return n
}

// inTx runs fn in a committed transaction.
func (o *operator) inTx(t *testing.T, fn func(tx pgx.Tx)) {
	t.Helper()
	require.NoError(t, pg.InTx(o.ctx, o.pool, func(tx pgx.Tx) error { fn(tx); return nil }))
}

// TestOperatorActions drives every job kind whose work is a sweep or a recompute through
// River's client as an operator would in River UI: a cancelled job does nothing and Retry
// then does its work; Retry of a discarded job does its work; a deleted job does nothing and
// leaves nothing waiting on it, so the next one enqueued (the kind's schedule, or the next
// change) does the work.
func TestOperatorActions(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name string
		// arrange makes work for a job and returns the job's args and whether the work is
		// done.
		arrange func(t *testing.T, o *operator) (river.JobArgs, func() bool)
	}{
		{
			name: "IdempotencyExpireSweep",
			arrange: func(t *testing.T, o *operator) (river.JobArgs, func() bool) {
				tenant := factory.Tenant(t, o.pool)
				require.NoError(t, queries.IdempotencyKeyStore(o.ctx, o.pool, sql.IdempotencyKeyStoreParams{
					TenantID: tenant.ID, Scope: "admin", Key: "expired", RequestHash: make([]byte, 32), ResponseStatus: 201,
					ResponseHeaders: []byte(`{}`), ResponseBody: []byte(`{}`), Now: o.clock.Now().Add(-2 * day), ExpiresAt: o.clock.Now().Add(-day),
				}))
				return jobargs.IdempotencyExpireSweep{}, func() bool {
					return o.count(t, "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", tenant.ID) == 0
				}
			},
		},
		{
			name: "EventRetentionSweep",
			arrange: func(t *testing.T, o *operator) (river.JobArgs, func() bool) {
				tenant := factory.Tenant(t, o.pool)
				o.inTx(t, func(tx pgx.Tx) {
					err := core.Emit(o.ctx, tx, core.Step{Jobs: factory.Jobs, Now: o.clock.Now().Add(-31 * day)}, core.Event{TenantID: tenant.ID, Data: core.LicenseExpiredEvent{}})
					require.NoError(t, err)
				})
				return jobargs.EventRetentionSweep{}, func() bool {
					return o.count(t, "SELECT count(*) FROM events WHERE tenant_id = $1", tenant.ID) == 0
				}
			},
		},
		{
			name: "LicenseExpireSweep",
			arrange: func(t *testing.T, o *operator) (river.JobArgs, func() bool) {
				tenant := factory.Tenant(t, o.pool)
				expired := o.clock.Now().Add(-time.Hour)
				license := factory.License(t, o.pool, tenant.ID, factory.Policy(t, o.pool, tenant.ID).ID, factory.Customer(t, o.pool, tenant.ID).ID,
					func(p *core.LicenseIssueParams) { p.ExpiresAt = &expired })
				return jobargs.LicenseExpireSweep{}, func() bool {
					return o.count(t, "SELECT count(*) FROM licenses WHERE tenant_id = $1 AND id = $2 AND status = 'expired'", tenant.ID, license.ID) == 1
				}
			},
		},
		{
			name: "ReferralRecompute",
			arrange: func(t *testing.T, o *operator) (river.JobArgs, func() bool) {
				l := o.referrer(t)
				return jobargs.ReferralRecompute{TenantID: l.tenant.ID}, o.rewarded(t, l)
			},
		},
		{
			name: "ReferralRecomputeSweep",
			arrange: func(t *testing.T, o *operator) (river.JobArgs, func() bool) {
				return jobargs.ReferralRecomputeSweep{}, o.rewarded(t, o.referrer(t))
			},
		},
		{
			name: "SubscriptionRenewSweep",
			arrange: func(t *testing.T, o *operator) (river.JobArgs, func() bool) {
				sub := o.subscription(t)
				return jobargs.SubscriptionRenewSweep{}, func() bool {
					return o.count(t, "SELECT count(*) FROM subscription_cycles WHERE tenant_id = $1 AND subscription_id = $2", sub.TenantID, sub.ID) == 1
				}
			},
		},
		{
			name: "SubscriptionLapseSweep",
			arrange: func(t *testing.T, o *operator) (river.JobArgs, func() bool) {
				sub := o.subscription(t)
				_, err := o.pool.Exec(o.ctx, "UPDATE subscriptions SET status = 'past_due' WHERE tenant_id = $1 AND id = $2", sub.TenantID, sub.ID)
				require.NoError(t, err)
				return jobargs.SubscriptionLapseSweep{}, func() bool {
					return o.count(t, "SELECT count(*) FROM subscriptions WHERE tenant_id = $1 AND id = $2 AND status = 'lapsed'", sub.TenantID, sub.ID) == 1
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			t.Run("CancelThenRetry", func(t *testing.T) {
				t.Parallel()
				o := setupOperator(t, RevocationConfig{})
				args, done := tt.arrange(t, o)
				job := o.cancelled(t, args)
				require.False(t, done(), "a cancelled job does nothing")
				o.retry(t, job)
				require.Eventually(t, done, operatorWait, 20*time.Millisecond, "Retry of a cancelled job does its work")
			})
			t.Run("RetryDiscarded", func(t *testing.T) {
				t.Parallel()
				o := setupOperator(t, RevocationConfig{})
				args, done := tt.arrange(t, o)
				o.retry(t, o.discarded(t, args))
				require.Eventually(t, done, operatorWait, 20*time.Millisecond, "Retry of a discarded job does its work")
			})
			t.Run("DeleteThenNext", func(t *testing.T) {
				t.Parallel()
				o := setupOperator(t, RevocationConfig{})
				args, done := tt.arrange(t, o)
				job := o.waiting(t, args)
				_, err := o.client.JobDelete(o.ctx, job.ID)
				require.NoError(t, err)
				require.False(t, done(), "a deleted job does nothing")
				res, err := o.client.Insert(o.ctx, args, nil)
				require.NoError(t, err)
				require.False(t, res.UniqueSkippedAsDuplicate, "nothing left blocks the next job")
				o.completed(t, res.Job.ID)
				require.Eventually(t, done, operatorWait, 20*time.Millisecond, "the next job does the work")
			})
		})
	}
}

// referrer loads a tenant whose referrer has three qualifying referrals, no reward stored yet.
func (o *operator) referrer(t *testing.T) loaded {
	t.Helper()
	var l loaded
	o.inTx(t, func(tx pgx.Tx) { l = load(t, tx, newWorld().refs(3).refWorld, defaultRefSettings) })
	return l
}

// rewarded reports whether l's referrer has its reward stored.
func (o *operator) rewarded(t *testing.T, l loaded) func() bool {
	return func() bool {
		var got map[int]refSnapshot
		o.inTx(t, func(tx pgx.Tx) { got = storedSnapshots(t, tx, l) })
		return got[0].Bonus == 5
	}
}

// subscription starts a subscription due for renewal on the operator's clock
// (dueSubscription).
func (o *operator) subscription(t *testing.T) sql.Subscription {
	t.Helper()
	return dueSubscription(t, o.pool)
}

// TestOperatorActionsRetryOfADuplicate: a cancelled job does not hold back the next one of
// the same unique args (River's uniqueness counts jobs waiting, running or, for periodic
// jobs, completed in the period; not cancelled ones), and Retry of the cancelled job while
// that next one exists is refused as a duplicate: the next one does the work.
func TestOperatorActionsRetryOfADuplicate(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name string
		// opts are the insert options of the job's enqueuer (nil: the args' own).
		opts    *river.InsertOpts
		arrange func(t *testing.T, o *operator) (river.JobArgs, func() bool)
	}{
		{
			name: "ReferralRecompute",
			arrange: func(t *testing.T, o *operator) (river.JobArgs, func() bool) {
				l := o.referrer(t)
				return jobargs.ReferralRecompute{TenantID: l.tenant.ID}, o.rewarded(t, l)
			},
		},
		{
			name: "PeriodicSweep", // as PeriodicJobs enqueues referral.recompute_sweep
			opts: &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: time.Hour}},
			arrange: func(t *testing.T, o *operator) (river.JobArgs, func() bool) {
				return jobargs.ReferralRecomputeSweep{}, o.rewarded(t, o.referrer(t))
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := setupOperator(t, RevocationConfig{})
			args, done := tt.arrange(t, o)
			insert := func() *rivertype.JobRow {
				opts := river.InsertOpts{}
				if tt.opts != nil {
					opts = *tt.opts
				}
				opts.ScheduledAt = clock.System{}.Now().Add(time.Hour).Truncate(time.Hour) // one period
				res, err := o.client.Insert(o.ctx, args, &opts)
				require.NoError(t, err)
				require.False(t, res.UniqueSkippedAsDuplicate)
				return res.Job
			}

			cancelled, err := o.client.JobCancel(o.ctx, insert().ID)
			require.NoError(t, err)
			next := insert()
			_, err = o.client.JobRetry(o.ctx, cancelled.ID)
			require.ErrorContains(t, err, "duplicate key value violates unique constraint")
			require.False(t, done())

			o.retry(t, next) // run the next one now
			require.Eventually(t, done, operatorWait, 20*time.Millisecond)
		})
	}
}

// TestOperatorActionsRevocationCheck: a revocation.check retried from River is one more
// firing under the global rate limit — within the interval of the last firing it completes
// without asking the store, after it it checks a licence.
func TestOperatorActionsRevocationCheck(t *testing.T) {
	t.Parallel()
	o := setupOperator(t, RevocationConfig{Interval: time.Minute})
	fake, srv := fakestore.New(t, "store-key")
	tenant := factory.Tenant(t, o.pool)
	factory.LogChannel(t, o.pool, tenant.ID)
	store := factory.UpstreamStore(t, o.pool, tenant.ID, srv.URL, "store-key")
	var rows []upstream.Row
	for i := range 3 {
		id := fmt.Sprintf("L%d", i)
		fake.Add(id)
		rows = append(rows, factory.UpstreamRow(id, "owner", factory.Now.Add(-time.Duration(i)*time.Hour)))
	}
	factory.UpstreamImport(t, o.pool, store, rows...)
	checks := func() int {
		return o.count(t, "SELECT count(*) FROM upstream_license_checks WHERE tenant_id = $1", tenant.ID)
	}

	cancelled := o.cancelled(t, jobargs.RevocationCheck{})
	require.Zero(t, fake.Requests(), "a cancelled firing asks nothing")
	o.retry(t, cancelled)
	require.Equal(t, int64(1), fake.Requests(), "Retry of a cancelled firing checks a licence")
	require.Equal(t, 1, checks())

	o.retry(t, o.discarded(t, jobargs.RevocationCheck{}))
	require.Equal(t, int64(1), fake.Requests(), "a retried firing within the interval of the last one asks nothing")

	o.clock.Advance(time.Minute)
	// Another cancelled firing: retrying the one that just completed could race River's own
	// late record of that completion, which would mark the retried run completed early.
	o.retry(t, o.cancelled(t, jobargs.RevocationCheck{}))
	require.Equal(t, int64(2), fake.Requests(), "a retried firing after the interval checks a licence")
	require.Equal(t, 2, checks())

}
