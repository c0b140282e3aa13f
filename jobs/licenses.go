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

// licenseExpireSweepBatch is how many licences one sweep expires.
const licenseExpireSweepBatch = 1000

// LicenseExpireSweepWorker expires one batch of licences whose expiry has passed, auditing
// and emitting license.expired for each, in one transaction with the job's completion.
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
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		st := w.cfg.step(ctx, job.JobRow)
		expired, err := queries.LicenseExpireDueAllTenants(ctx, tx, sql.LicenseExpireDueAllTenantsParams{Now: st.Now, Batch: licenseExpireSweepBatch})
		if err != nil {
			return fmt.Errorf("expire licences: %w", err)
		}
		for _, l := range expired {
			err := core.Record(ctx, tx, st, l.TenantID, "license.expire", "license", l.ID, core.LicenseExpiredEvent(core.LicenseFieldsOf(l)))
			if err != nil {
				return err
			}
		}
		if len(expired) == licenseExpireSweepBatch {
			if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertTx(ctx, tx, jobargs.LicenseExpireSweep{}, nil); err != nil {
				return fmt.Errorf("enqueue next licence expiry sweep: %w", err)
			}
		}
		return complete(ctx, tx, job)
	})
}
