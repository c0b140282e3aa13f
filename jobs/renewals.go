package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// renewSweepsAtOnce is how many subscription.renew_sweep runs share the due renewals at once
// while full batches are due (sweepAtOnce): a run is one serial transaction, round trip after
// round trip, so one at a time leaves the machine's cores idle.
const renewSweepsAtOnce = 4

// SubscriptionRenewSweepWorker renews due subscriptions in batches: fiat prices are quoted
// once per currency from Config.Rates (core.RenewalQuotes), outside any transaction; then up
// to a batch (Config.Batches.SubscriptionRenew) of due subscriptions across tenants are
// renewed — each cycle opened with its PayIn, or the failure to quote recorded with backoff —
// with their payin.create_invoice jobs, in one transaction with the job's completion
// (core.SubscriptionRenewSweep); a full batch enqueues the next runs, up to renewSweepsAtOnce
// running at once, each picking rows the others do not hold (sweepAtOnce). A renewal
// that fails for a reason of its own subscription rolls the batch back: it is recorded as a
// failed renewal of that subscription, backed off and audited with its error
// (core.SubscriptionRenewFailed; at the failure cap it waits for an operator in the stuck
// renewals' list), and the batch runs again without it.
type SubscriptionRenewSweepWorker struct {
	river.WorkerDefaults[jobargs.SubscriptionRenewSweep]
	cfg Config
}

// Timeout bounds one sweep: Config.JobTimeout.
func (w *SubscriptionRenewSweepWorker) Timeout(*river.Job[jobargs.SubscriptionRenewSweep]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work renews the due subscriptions and completes the job.
func (w *SubscriptionRenewSweepWorker) Work(ctx context.Context, job *river.Job[jobargs.SubscriptionRenewSweep]) error {
	p := core.SubscriptionRenewSweepParams{Batch: w.cfg.batches().SubscriptionRenew, Quotes: core.RenewalQuotes(ctx, w.cfg.Rates)}
	recorded := map[uuid.UUID]bool{} // a failure recorded backs its subscription off: it is not picked again
	for {
		restore := outcomesMark(ctx)
		err := sweepAtOnce(ctx, w.cfg, job, p.Batch, renewSweepsAtOnce, func(tx pgx.Tx, st core.Step) (int, error) {
			return core.SubscriptionRenewSweep(ctx, tx, st, p)
		})
		var failed *core.RenewalError
		if !errors.As(err, &failed) || recorded[failed.SubscriptionID] {
			return err
		}
		restore() // the batch rolled back: its renewals are not counted
		recorded[failed.SubscriptionID] = true
		w.cfg.Log.WarnContext(ctx, "renewal failed in a batch; recorded and backed off", "tenant", failed.TenantID,
			"subscription", failed.SubscriptionID, "cycle", failed.CycleNumber, "error", failed.Err)
		err = pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
			_, err := core.SubscriptionRenewFailed(ctx, tx, w.cfg.step(ctx, job.JobRow), failed)
			return err
		})
		if err != nil {
			return err
		}
	}
}

// SubscriptionRenewWorker renews one subscription for one cycle (core.SubscriptionRenew): the
// subscription.renew jobs that sweeps of earlier versions enqueued, one per renewal, before
// the sweep renewed in batches itself (SubscriptionRenewSweepWorker).
// A fiat price is quoted from Config.Rates first, outside any transaction; then creating
// the PayIn and opening the cycle — or recording the failure to quote, with backoff — and
// completing the job are one transaction. A job for a cycle that is not due (already
// opened by an earlier or duplicated job, cancelled, lapsed, at the failure cap) completes
// without doing anything. Invoice creation is the payin.create_invoice job's business.
type SubscriptionRenewWorker struct {
	river.WorkerDefaults[jobargs.SubscriptionRenew]
	cfg Config
}

// Timeout bounds one renewal, the rate fetch included: Config.JobTimeout.
func (w *SubscriptionRenewWorker) Timeout(*river.Job[jobargs.SubscriptionRenew]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work renews the subscription and completes the job.
func (w *SubscriptionRenewWorker) Work(ctx context.Context, job *river.Job[jobargs.SubscriptionRenew]) error {
	args := job.Args
	st, err := w.cfg.tenantStep(ctx, w.cfg.DB, job.JobRow, args.TenantID)
	if err != nil {
		return err
	}
	sub, err := core.SubscriptionRenewalDue(ctx, w.cfg.DB, sql.SubscriptionRenewalGetParams{
		TenantID: args.TenantID, ID: args.SubscriptionID, CycleNumber: args.CycleNumber, Now: st.Now,
	})
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		return err
	}
	if err != nil || !sub.Due {
		return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return complete(ctx, tx, job) })
	}
	var quote core.RenewalQuote
	if sub.PriceCurrency != sql.CurrencySAT {
		rate, err := w.cfg.Rates.Rate(ctx, string(sub.PriceCurrency))
		if err != nil {
			w.cfg.Log.WarnContext(ctx, "renewal not quoted", "subscription", sub.ID, "cycle", args.CycleNumber, "error", err)
			quote.Err = fmt.Errorf("quote %s: %w", sub.PriceCurrency, err)
		} else {
			quote.Rate = &rate
		}
	}
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		if _, err := core.SubscriptionRenew(ctx, tx, st, core.SubscriptionRenewParams{
			TenantID: args.TenantID, SubscriptionID: args.SubscriptionID, CycleNumber: args.CycleNumber, Quote: quote,
		}); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}

// SubscriptionLapseSweepWorker lapses past_due subscriptions unpaid beyond their grace days
// (core.SubscriptionLapseSweep), a batch (Config.Batches.SubscriptionLapse) across tenants, in
// one transaction with the job's completion; a full batch enqueues the next run (see sweep).
type SubscriptionLapseSweepWorker struct {
	river.WorkerDefaults[jobargs.SubscriptionLapseSweep]
	cfg Config
}

// Timeout bounds one sweep: Config.JobTimeout.
func (w *SubscriptionLapseSweepWorker) Timeout(*river.Job[jobargs.SubscriptionLapseSweep]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work lapses the due subscriptions and completes the job.
func (w *SubscriptionLapseSweepWorker) Work(ctx context.Context, job *river.Job[jobargs.SubscriptionLapseSweep]) error {
	batch := w.cfg.batches().SubscriptionLapse
	return sweep(ctx, w.cfg, job, batch, func(tx pgx.Tx, st core.Step) (int, error) {
		return core.SubscriptionLapseSweep(ctx, tx, st, batch)
	})
}
