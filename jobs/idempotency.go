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

// sweepAgainIfFull enqueues next, in tx, when a sweep's batch was full (deleted == batch):
// more may be left, so the next sweep follows at once. It is not unique, or it would be
// deduplicated against this sweep's period.
func sweepAgainIfFull(ctx context.Context, tx pgx.Tx, deleted int64, batch int, next river.JobArgs) error {
	if deleted == 0 || deleted < int64(batch) {
		return nil
	}
	if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertTx(ctx, tx, next, nil); err != nil {
		return fmt.Errorf("enqueue the next %s: %w", next.Kind(), err)
	}
	return nil
}

// IdempotencyExpireSweepWorker deletes one batch of expired Idempotency-Key responses. When
// the batch was full it enqueues the next sweep in the same transaction.
type IdempotencyExpireSweepWorker struct {
	river.WorkerDefaults[jobargs.IdempotencyExpireSweep]
	cfg Config
}

// Timeout bounds one sweep: Config.JobTimeout.
func (w *IdempotencyExpireSweepWorker) Timeout(*river.Job[jobargs.IdempotencyExpireSweep]) time.Duration {
	return w.cfg.jobTimeout()
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
		if err := sweepAgainIfFull(ctx, tx, deleted, w.cfg.IdempotencySweepBatch, jobargs.IdempotencyExpireSweep{}); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}
