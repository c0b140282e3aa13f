package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// ClockAdvanceWorker runs an advance of a sandbox tenant's clock on (core.ClockAdvanceRun):
// one run of Config.Batches.ClockAdvance things that fall due per job, in one transaction
// with the job's completion and, while the advance is still running, the enqueueing of its
// next run. Fiat renewals are quoted from Config.Rates before the transaction.
type ClockAdvanceWorker struct {
	river.WorkerDefaults[jobargs.ClockAdvance]
	cfg Config
}

// Timeout bounds one run: Config.JobTimeout.
func (w *ClockAdvanceWorker) Timeout(*river.Job[jobargs.ClockAdvance]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work runs the advance on by one batch and completes the job.
func (w *ClockAdvanceWorker) Work(ctx context.Context, job *river.Job[jobargs.ClockAdvance]) error {
	quotes := core.RenewalQuotes(ctx, w.cfg.Rates)
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		st, err := w.cfg.tenantStep(ctx, tx, job.JobRow, job.Args.TenantID)
		if err != nil {
			return err
		}
		advance, err := core.ClockAdvanceRun(ctx, tx, st, core.ClockAdvanceRunParams{
			TenantID: job.Args.TenantID, ID: job.Args.AdvanceID, Batch: w.cfg.batches().ClockAdvance, Quotes: quotes,
		})
		if err != nil {
			return err
		}
		if advance.Status == sql.ClockAdvanceStatusRunning {
			next := job.Args
			next.Run++
			if _, err := st.Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: next}}); err != nil {
				return fmt.Errorf("enqueue the next run of clock advance %s: %w", advance.ID, err)
			}
		}
		return complete(ctx, tx, job)
	})
}
