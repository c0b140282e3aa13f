package factory

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tessera/tessera/internal/pg"
)

// Job inserts a River job of args through Jobs (so a tenant job carries its tenant's tag),
// created at Now, and leaves it in state as River would have: available or running at Now,
// scheduled an hour after Now, retryable after a failed attempt, and completed, cancelled or
// discarded (after its last failed attempt) at Now. It returns the job's id.
func Job(tb testing.TB, db pg.DB, args river.JobArgs, state rivertype.JobState) int64 {
	tb.Helper()
	var id int64
	err := pg.InTx(context.Background(), db, func(tx pgx.Tx) error {
		res, err := Jobs.InsertManyTx(context.Background(), tx, []river.InsertManyParams{{Args: args}})
		if err != nil {
			return err
		}
		id = res[0].Job.ID
		_, err = tx.Exec(context.Background(), `
			UPDATE river_job SET
				state = $2::text::river_job_state,
				created_at = $3::timestamptz,
				scheduled_at = CASE $2::text WHEN 'scheduled' THEN $3::timestamptz + interval '1 hour' ELSE $3::timestamptz END,
				attempt = CASE WHEN $2::text IN ('available', 'scheduled') THEN 0 WHEN $2 = 'discarded' THEN max_attempts ELSE 1 END,
				attempted_at = CASE WHEN $2::text IN ('available', 'scheduled') THEN NULL ELSE $3::timestamptz END,
				finalized_at = CASE WHEN $2::text IN ('completed', 'cancelled', 'discarded') THEN $3::timestamptz END,
				errors = CASE WHEN $2::text IN ('retryable', 'discarded')
					THEN ARRAY[jsonb_build_object('at', $3::timestamptz, 'attempt', 1, 'error', 'factory: attempt failed', 'trace', '')] END
			WHERE id = $1`, id, string(state), Now)
		return err
	})
	if err != nil {
		tb.Fatalf("factory: job %s: %v", args.Kind(), err)
	}
	return id
}
