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

// IdempotencyExpireSweepWorker deletes a batch (Config.Batches.IdempotencyExpire) of expired
// Idempotency-Key responses; a full batch enqueues the next run (see sweep).
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
	batch := w.cfg.batches().IdempotencyExpire
	return sweep(ctx, w.cfg, job, batch, func(tx pgx.Tx, st core.Step) (int, error) {
		deleted, err := queries.IdempotencyKeyDeleteExpired(ctx, tx, sql.IdempotencyKeyDeleteExpiredParams{Now: st.Now, Batch: int32(batch)})
		if err != nil {
			return 0, fmt.Errorf("delete expired idempotency keys: %w", err)
		}
		w.cfg.Log.InfoContext(ctx, "expired idempotency keys deleted", "count", deleted)
		return int(deleted), nil
	})
}
