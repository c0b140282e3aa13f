package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
)

// LicenseExpireSweepWorker expires licences whose expiry has passed (core.LicenseExpireSweep),
// a batch (Config.Batches.LicenseExpire) across tenants, in one transaction with the job's
// completion; a full batch enqueues the next run (see sweep).
type LicenseExpireSweepWorker struct {
	river.WorkerDefaults[jobargs.LicenseExpireSweep]
	cfg Config
}

// Timeout bounds one sweep: Config.JobTimeout.
func (w *LicenseExpireSweepWorker) Timeout(*river.Job[jobargs.LicenseExpireSweep]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work expires due licences and completes the job.
func (w *LicenseExpireSweepWorker) Work(ctx context.Context, job *river.Job[jobargs.LicenseExpireSweep]) error {
	batch := w.cfg.batches().LicenseExpire
	return sweep(ctx, w.cfg, job, batch, func(tx pgx.Tx, st core.Step) (int, error) {
		return core.LicenseExpireSweep(ctx, tx, st, batch)
	})
}
