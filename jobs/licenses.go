package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/sql"
)

// LicenseExpireSweepWorker expires a batch (Config.Batches.LicenseExpire) of licences whose
// expiry has passed, auditing and emitting license.expired for each, in one transaction with
// the job's completion; a full batch enqueues the next run (see sweep).
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
		expired, err := queries.LicenseExpireDueAllTenants(ctx, tx, sql.LicenseExpireDueAllTenantsParams{Now: st.Now, Batch: int32(batch)})
		if err != nil {
			return 0, fmt.Errorf("expire licences: %w", err)
		}
		for _, l := range expired {
			err := core.Record(ctx, tx, st, core.Change{TenantID: l.TenantID, Action: "license.expire", SubjectType: "license", SubjectID: l.ID.String(), Event: core.LicenseExpiredEvent(core.LicenseFieldsOf(l))})
			if err != nil {
				return 0, err
			}
		}
		return len(expired), nil
	})
}
