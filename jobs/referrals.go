package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
)

// ReferralRecompute recomputes the referral rewards p names in tx (core.ReferralRecompute):
// of the one referrer a job enqueued before maintenance ran in the changes' own transactions
// names, or of all the tenant's referrers when p.ReferrerID is nil.
func ReferralRecompute(ctx context.Context, tx pgx.Tx, st core.Step, p jobargs.ReferralRecompute) (core.ReferralRecomputeResult, error) {
	var referrers []uuid.UUID // nil: all
	if p.ReferrerID != nil {
		referrers = []uuid.UUID{*p.ReferrerID}
	}
	return core.ReferralRecompute(ctx, tx, st, core.ReferralRecomputeParams{TenantID: p.TenantID, ReferrerIDs: referrers})
}

// ReferralRecomputeWorker runs a referral.recompute job: the recompute and the job's
// completion in one transaction.
type ReferralRecomputeWorker struct {
	river.WorkerDefaults[jobargs.ReferralRecompute]
	cfg Config
}

// Timeout bounds one recompute: Config.JobTimeout (a full one of a million customers takes
// seconds).
func (w *ReferralRecomputeWorker) Timeout(*river.Job[jobargs.ReferralRecompute]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work recomputes the rewards the job names and completes it.
func (w *ReferralRecomputeWorker) Work(ctx context.Context, job *river.Job[jobargs.ReferralRecompute]) error {
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		st, err := w.cfg.tenantStep(ctx, tx, job.JobRow, job.Args.TenantID)
		if err != nil {
			return err
		}
		res, err := ReferralRecompute(ctx, tx, st, job.Args)
		if err != nil {
			return err
		}
		w.cfg.Log.InfoContext(ctx, "referral rewards recomputed", "tenant_id", job.Args.TenantID, "referrer_id", job.Args.ReferrerID,
			"processed", res.Processed, "updated", res.Updated, "rewards_changed", res.RewardsChanged)
		return complete(ctx, tx, job)
	})
}

// ReferralRecomputeSweepWorker enqueues a full referral recompute of every tenant, all in one
// run, so it does not continue.
type ReferralRecomputeSweepWorker struct {
	river.WorkerDefaults[jobargs.ReferralRecomputeSweep]
	cfg Config
}

// Timeout bounds one sweep: Config.JobTimeout.
func (w *ReferralRecomputeSweepWorker) Timeout(*river.Job[jobargs.ReferralRecomputeSweep]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work enqueues the recomputes and completes the job, in one transaction.
func (w *ReferralRecomputeSweepWorker) Work(ctx context.Context, job *river.Job[jobargs.ReferralRecomputeSweep]) error {
	return sweep(ctx, w.cfg, job, noContinuation, func(tx pgx.Tx, st core.Step) (int, error) {
		tenants, err := queries.ReferralTenantIDs(ctx, tx)
		if err != nil {
			return 0, fmt.Errorf("list tenants: %w", err)
		}
		if len(tenants) > 0 {
			params := make([]river.InsertManyParams, len(tenants))
			for i, id := range tenants {
				params[i] = river.InsertManyParams{Args: jobargs.ReferralRecompute{TenantID: id}}
			}
			if _, err := st.Jobs.InsertManyTx(ctx, tx, params); err != nil {
				return 0, fmt.Errorf("enqueue referral recomputes: %w", err)
			}
		}
		return len(tenants), nil
	})
}
