package upstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// Weights are the weights of the risk score's terms (the RevocationQueue query says how
// each term is computed). Every weight must be at least 0: the sign of each term is fixed by
// SPEC 5, the weight only says how much it counts. The score uses the weights stored in the
// database (revocation_weights), which WeightsSet writes from the configuration.
type Weights struct {
	// RevokedCount weighs ln(1 + the owner's licences gone upstream). Default 10.
	RevokedCount float64
	// RecentRevocation weighs 1 / (1 + days since the owner's last revocation). Default 10.
	RecentRevocation float64
	// RevokedHours weighs ln(1 + hours the owner held licences before they went). Default 2.
	RevokedHours float64
	// OwnerHours weighs -ln(1 + hours of the owner's other unrevoked licences). Default 1.
	OwnerHours float64
	// LicenseAge weighs -ln(1 + hours since the licence was acquired). Default 1.
	LicenseAge float64
	// Staleness weighs the hours since the licence's last check (or import). Default 1.
	Staleness float64
}

// DefaultWeights returns the default weights.
func DefaultWeights() Weights {
	return Weights{RevokedCount: 10, RecentRevocation: 10, RevokedHours: 2, OwnerHours: 1, LicenseAge: 1, Staleness: 1}
}

// Validate refuses negative weights.
func (w Weights) Validate() error {
	for _, v := range []float64{w.RevokedCount, w.RecentRevocation, w.RevokedHours, w.OwnerHours, w.LicenseAge, w.Staleness} {
		if v < 0 {
			return errors.New("revocation weights must be at least 0")
		}
	}
	return nil
}

// Schedule is what decides eligibility and order: the score's weights and the per-licence
// minimum interval between checks.
type Schedule struct {
	// Weights of the risk score.
	Weights Weights
	// MinInterval is the least time between two answered checks of a licence. Default 15m.
	MinInterval time.Duration
}

// DefaultSchedule returns the default weights and a 15-minute minimum interval.
func DefaultSchedule() Schedule {
	return Schedule{Weights: DefaultWeights(), MinInterval: 15 * time.Minute}
}

// OrDefault fills in a zero Schedule with the defaults.
func (s Schedule) OrDefault() Schedule {
	if s == (Schedule{}) {
		return DefaultSchedule()
	}
	if s.MinInterval == 0 {
		s.MinInterval = 15 * time.Minute
	}
	return s
}

// QueueParams returns the RevocationQueue parameters of s at now for tenantID (nil: all
// tenants), up to limit rows. The weights are the stored ones (WeightsSet).
func (s Schedule) QueueParams(now time.Time, tenantID *uuid.UUID, limit int32) sql.RevocationQueueParams {
	return sql.RevocationQueueParams{Now: now, TenantID: tenantID, MinIntervalSeconds: s.MinInterval.Seconds(), RowLimit: limit}
}

// pickDepth is how deep into the queue Schedule.Pick keeps the bounds tight: the queue
// endpoint's default page (api's revocationQueue), so that its read re-scores few licences
// too.
const pickDepth = 20

// Pick returns the first limit rows of the revocation queue of tenantID (nil: every live
// tenant) at now, as the check loop picks (RevocationQueue), and then re-anchors at now the
// bounds that a read of the first max(limit, 20) rows had to re-score
// (RevocationBoundsTighten), so the next picks, and the queue endpoint's reads, re-score few
// licences however many are pending. Both statements run in one transaction with JIT off
// (queue).
func (s Schedule) Pick(ctx context.Context, db pg.DB, now time.Time, tenantID *uuid.UUID, limit int32) ([]sql.RevocationQueueRow, error) {
	var rows []sql.RevocationQueueRow
	err := pg.InTx(ctx, db, func(tx pgx.Tx) error {
		var err error
		rows, err = s.queue(ctx, tx, now, tenantID, max(limit, pickDepth))
		if err != nil || len(rows) == 0 {
			return err
		}
		_, err = queries.RevocationBoundsTighten(ctx, tx, sql.RevocationBoundsTightenParams{
			Now: now, TenantID: tenantID, MinIntervalSeconds: s.MinInterval.Seconds(), Score: rows[len(rows)-1].Score,
		})
		if err != nil {
			return fmt.Errorf("re-anchor revocation bounds: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rows[:min(int(limit), len(rows))], nil
}

// Queue returns the first limit rows of the revocation queue of tenantID at now, as Pick
// would, and writes nothing: the queue endpoint's read. It runs in a transaction of its own
// with JIT off (queue).
func (s Schedule) Queue(ctx context.Context, db pg.DB, now time.Time, tenantID *uuid.UUID, limit int32) ([]sql.RevocationQueueRow, error) {
	var rows []sql.RevocationQueueRow
	err := pg.InTx(ctx, db, func(tx pgx.Tx) error {
		var err error
		rows, err = s.queue(ctx, tx, now, tenantID, limit)
		return err
	})
	return rows, err
}

// queue reads RevocationQueue in tx with JIT off until tx ends (RevocationPickSession): from
// about 10M pending licences the planner's estimate crosses jit_above_cost, and compiling
// the plan cost forty times executing it.
func (s Schedule) queue(ctx context.Context, tx pgx.Tx, now time.Time, tenantID *uuid.UUID, limit int32) ([]sql.RevocationQueueRow, error) {
	if err := queries.RevocationPickSession(ctx, tx); err != nil {
		return nil, fmt.Errorf("turn JIT off for the revocation queue: %w", err)
	}
	rows, err := queries.RevocationQueue(ctx, tx, s.QueueParams(now, tenantID, limit))
	if err != nil {
		return nil, fmt.Errorf("read the revocation queue: %w", err)
	}
	return rows, nil
}

// WeightsSet stores w as the risk score's weights for every process, as a process starts
// with its configuration: the pick and the bounds it keeps per licence (RevocationQueue)
// both use the stored weights. Changed weights recompute the bound of every pending
// licence in the same statement (one pass over them); unchanged ones write nothing. All
// processes must be configured with the same weights: the last one started wins.
func WeightsSet(ctx context.Context, db sql.DBTX, w Weights) error {
	if err := w.Validate(); err != nil {
		return err
	}
	err := queries.RevocationWeightsSet(ctx, db, sql.RevocationWeightsSetParams{
		RevokedCount: w.RevokedCount, RecentRevocation: w.RecentRevocation, RevokedHours: w.RevokedHours,
		OwnerHours: w.OwnerHours, LicenseAge: w.LicenseAge, Staleness: w.Staleness,
	})
	if err != nil {
		return fmt.Errorf("store revocation weights: %w", err)
	}
	return nil
}
