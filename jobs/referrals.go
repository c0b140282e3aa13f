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

// ReferralRecomputeResult is what a referral recompute did.
type ReferralRecomputeResult struct {
	// Processed is how many referrers were computed: those with referrals or a stored reward.
	Processed int
	// Updated is how many stored rewards changed (any count, the bonus or the badge).
	Updated int
	// RewardsChanged is how many referrers' bonus or badge changed: one
	// referral.reward_changed event each.
	RewardsChanged int
}

// ReferralRecompute recomputes the referral rewards p names in tx with the ReferralRecompute
// query — of one referrer, or of all the tenant's referrers when p.ReferrerID is nil, in one
// statement — writing only the rewards whose values changed, and audits and emits
// referral.reward_changed for each referrer whose bonus or badge changed.
func ReferralRecompute(ctx context.Context, tx pgx.Tx, st core.Step, p jobargs.ReferralRecompute) (ReferralRecomputeResult, error) {
	rows, err := ReferralRecomputeRows(ctx, tx, sql.ReferralRecomputeParams{
		TenantID: p.TenantID, ReferrerID: p.ReferrerID, Now: st.Now, Write: true,
	})
	if err != nil {
		return ReferralRecomputeResult{}, fmt.Errorf("recompute referral rewards of tenant %s: %w", p.TenantID, err)
	}
	var res ReferralRecomputeResult
	for _, r := range rows {
		res.Processed, res.Updated = int(r.Processed), int(r.Updated)
		if r.ReferrerID == nil {
			continue // the one row of a recompute that changed no reward
		}
		res.RewardsChanged++
		data := core.ReferralRewardChangedEvent{
			CustomerID: *r.ReferrerID, QualifiedTotal: r.QualifiedTotal, BonusUnits: r.BonusUnits, Badge: r.Badge,
			PreviousBonusUnits: zeroIfNil(r.PreviousBonusUnits), PreviousBadge: r.PreviousBadge,
		}
		err := core.Record(ctx, tx, st, core.Change{TenantID: p.TenantID, Action: "referral.reward_change", SubjectType: "customer", SubjectID: (*r.ReferrerID).String(), Event: data})
		if err != nil {
			return ReferralRecomputeResult{}, err
		}
	}
	return res, nil
}

// ReferralRecomputeRows runs the ReferralRecompute query in tx the way the recompute job
// does: with the session settings of ReferralRecomputeSession (local to tx) and a plan made
// for params (core.CustomPlans). bench/referrals measures it.
func ReferralRecomputeRows(ctx context.Context, tx pgx.Tx, params sql.ReferralRecomputeParams) ([]sql.ReferralRecomputeRow, error) {
	if err := queries.ReferralRecomputeSession(ctx, tx); err != nil {
		return nil, fmt.Errorf("set the referral recompute's session: %w", err)
	}
	return queries.ReferralRecompute(ctx, core.CustomPlans{DB: tx}, params)
}

func zeroIfNil(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// ReferralRecomputeWorker runs a referral.recompute job: the recompute and the job's
// completion in one transaction.
type ReferralRecomputeWorker struct {
	river.WorkerDefaults[jobargs.ReferralRecompute]
	cfg Config
}

// Timeout bounds one recompute: Config.JobTimeout (a full one of a million customers takes
// about 10 s).
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
