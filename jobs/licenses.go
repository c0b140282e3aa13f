package jobs

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

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

// Timeout bounds one sweep.
func (w *LicenseExpireSweepWorker) Timeout(*river.Job[jobargs.LicenseExpireSweep]) time.Duration {
	return time.Minute
}

// Work expires due licences and completes the job.
func (w *LicenseExpireSweepWorker) Work(ctx context.Context, job *river.Job[jobargs.LicenseExpireSweep]) error {
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		client := river.ClientFromContext[pgx.Tx](ctx)
		st := core.Step{Now: w.cfg.Clock.Now(), Actor: jobActor(job.JobRow), Box: w.cfg.Box, Jobs: client}
		expired, err := queries.LicenseExpireDueAllTenants(ctx, tx, sql.LicenseExpireDueAllTenantsParams{Now: st.Now, Batch: licenseExpireSweepBatch})
		if err != nil {
			return fmt.Errorf("expire licences: %w", err)
		}
		for _, l := range expired {
			err := core.Record(ctx, tx, st, l.TenantID, "license.expire", "license", l.ID, core.EventLicenseExpired, core.LicenseEventData(l))
			if err != nil {
				return err
			}
		}
		if len(expired) == licenseExpireSweepBatch {
			if _, err := client.InsertTx(ctx, tx, jobargs.LicenseExpireSweep{}, nil); err != nil {
				return fmt.Errorf("enqueue next licence expiry sweep: %w", err)
			}
		}
		return complete(ctx, tx, job)
	})
}

// jobActor is the audit-log actor of a job: its kind and id.
func jobActor(job *rivertype.JobRow) core.Actor {
	return core.Actor{Type: core.ActorJob, ID: job.Kind + "/" + strconv.FormatInt(job.ID, 10)}
}
