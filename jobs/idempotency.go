package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// IdempotencyExpireSweepWorker deletes one batch of expired Idempotency-Key responses. When
// the batch was full it enqueues the next sweep in the same transaction.
type IdempotencyExpireSweepWorker struct {
	river.WorkerDefaults[jobargs.IdempotencyExpireSweep]
	cfg Config
}

// Timeout bounds one sweep.
func (w *IdempotencyExpireSweepWorker) Timeout(*river.Job[jobargs.IdempotencyExpireSweep]) time.Duration {
	return time.Minute
}

// Work deletes expired keys and completes the job in one transaction.
func (w *IdempotencyExpireSweepWorker) Work(ctx context.Context, job *river.Job[jobargs.IdempotencyExpireSweep]) error {
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		deleted, err := queries.IdempotencyKeyDeleteExpired(ctx, tx, sql.IdempotencyKeyDeleteExpiredParams{
			Now: w.cfg.Clock.Now(), Batch: int32(w.cfg.IdempotencySweepBatch),
		})
		if err != nil {
			return fmt.Errorf("delete expired idempotency keys: %w", err)
		}
		w.cfg.Log.InfoContext(ctx, "expired idempotency keys deleted", "count", deleted)
		// A full batch means more may be left: the next sweep follows at once. It is not
		// unique, or it would be deduplicated against this one's period.
		if deleted > 0 && deleted == int64(w.cfg.IdempotencySweepBatch) {
			if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertTx(ctx, tx, jobargs.IdempotencyExpireSweep{}, nil); err != nil {
				return fmt.Errorf("enqueue next idempotency sweep: %w", err)
			}
		}
		return complete(ctx, tx, job)
	})
}
