package jobs

import (
	"cmp"
	"context"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// SweepBatches is how many rows one run of each batched sweep handles: the @batch of its
// query. Zero fields take the defaults their comments give; each must be at most
// math.MaxInt32.
type SweepBatches struct {
	// IdempotencyExpire is how many expired Idempotency-Key responses one
	// idempotency.expire_sweep deletes. Default 10000.
	IdempotencyExpire int
	// EventRetention is how many events one event.retention_sweep deletes. Default 5000.
	EventRetention int
	// LicenseExpire is how many licences one license.expire_sweep expires. Default 1000.
	LicenseExpire int
	// SubscriptionRenew is how many due subscriptions one subscription.renew_sweep renews,
	// in one transaction. Default 500.
	SubscriptionRenew int
	// SubscriptionLapse is how many subscriptions one subscription.lapse_sweep lapses.
	// Default 1000.
	SubscriptionLapse int
	// PayInReconcile is how many PayIns of each kind (left PENDING, without their invoice
	// job, without their invalidation job) one payin.reconcile_sweep heals. Default 500.
	PayInReconcile int
	// ClockAdvance is how many things that fall due (renewals, invoice expiries, lapses,
	// licence expiries) one run of clock.advance does. Default 1000.
	ClockAdvance int
}

// orDefault is b with each zero field set to its default: the one place the defaults are.
func (b SweepBatches) orDefault() SweepBatches {
	return SweepBatches{
		IdempotencyExpire: cmp.Or(b.IdempotencyExpire, 10000),
		EventRetention:    cmp.Or(b.EventRetention, 5000),
		LicenseExpire:     cmp.Or(b.LicenseExpire, 1000),
		SubscriptionRenew: cmp.Or(b.SubscriptionRenew, 500),
		SubscriptionLapse: cmp.Or(b.SubscriptionLapse, 1000),
		PayInReconcile:    cmp.Or(b.PayInReconcile, 500),
		ClockAdvance:      cmp.Or(b.ClockAdvance, 1000),
	}
}

// validate refuses a batch (defaults filled in) below 1 or past what a query's int4 @batch
// holds.
func (b SweepBatches) validate() error {
	for _, f := range []struct {
		name  string
		batch int
	}{
		{"IdempotencyExpire", b.IdempotencyExpire}, {"EventRetention", b.EventRetention},
		{"LicenseExpire", b.LicenseExpire}, {"SubscriptionRenew", b.SubscriptionRenew},
		{"SubscriptionLapse", b.SubscriptionLapse}, {"PayInReconcile", b.PayInReconcile},
		{"ClockAdvance", b.ClockAdvance},
	} {
		if f.batch < 1 || f.batch > math.MaxInt32 {
			return fmt.Errorf("jobs: Config.Batches.%s must be between 1 and %d", f.name, math.MaxInt32)
		}
	}
	return nil
}

// batches is Config.Batches with defaults: workers built from a Config that Workers did not
// fill in (tests build them directly) get the defaults too.
func (cfg Config) batches() SweepBatches {
	return cfg.Batches.orDefault()
}

// noContinuation is the batch of a sweep that never enqueues its next run itself: it
// handles everything due in one run (webhook.deliver_sweep, referral.recompute_sweep), or
// what it picks stays pickable after its run (payin.reconcile_sweep enqueues settles of
// PayIns that stay PENDING until the settles run), so a next run at once would pick the same
// rows. The next period's run picks up what is left.
const noContinuation = 0

// sweep is the one shape of a sweep worker's Work. In one transaction that also completes
// the job, work handles up to batch rows with the job's core.Step and returns how many it
// handled. When that was a full batch, more may be due: the job's next run (the same args)
// is enqueued in the same transaction, to run at once, and so on until a run finds less
// than a batch. The next run is not unique, or it would be deduplicated against this run's
// period. A sweep with batch noContinuation never enqueues its next run.
//
// A new sweep copies LicenseExpireSweepWorker (licenses.go): its args in internal/jobargs,
// its batch a field of SweepBatches, its worker added in register, its line in schedule.
func sweep[T river.JobArgs](ctx context.Context, cfg Config, job *river.Job[T], batch int, work func(tx pgx.Tx, st core.Step) (int, error)) error {
	return sweepAtOnce(ctx, cfg, job, batch, 1, work)
}

// sweepAtOnce is sweep for a sweep whose runs may run atOnce at a time (its pick skips the
// rows another run holds): a run that fills its batch enqueues as many next runs as bring
// the runs of its kind running or waiting to run (JobCountRunnable) up to atOnce, and at
// least one, so that while full batches are due atOnce runs share them, and the work never
// stops before a run finds less than a batch.
func sweepAtOnce[T river.JobArgs](ctx context.Context, cfg Config, job *river.Job[T], batch, atOnce int, work func(tx pgx.Tx, st core.Step) (int, error)) error {
	return pg.InTx(ctx, cfg.DB, func(tx pgx.Tx) error {
		st := cfg.step(ctx, job.JobRow)
		n, err := work(tx, st)
		if err != nil {
			return err
		}
		if batch != noContinuation && n >= batch {
			next := 1
			if atOnce > 1 {
				others, err := queries.JobCountRunnable(ctx, tx, sql.JobCountRunnableParams{Kind: job.Kind, ID: job.ID})
				if err != nil {
					return fmt.Errorf("count the runs of %s: %w", job.Kind, err)
				}
				next = max(1, atOnce-int(others))
			}
			params := make([]river.InsertManyParams, next)
			for i := range params {
				params[i] = river.InsertManyParams{Args: job.Args}
			}
			if _, err := st.Jobs.InsertManyTx(ctx, tx, params); err != nil {
				return fmt.Errorf("enqueue the next %s: %w", job.Kind, err)
			}
		}
		return complete(ctx, tx, job)
	})
}
