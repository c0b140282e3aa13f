package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"github.com/tessera/tessera/sql"
)

// JobOperator retries and cancels River jobs in a transaction: a *river.Client[pgx.Tx],
// insert-only or working.
type JobOperator interface {
	JobRetryTx(ctx context.Context, tx pgx.Tx, id int64) (*rivertype.JobRow, error)
	JobCancelTx(ctx context.Context, tx pgx.Tx, id int64) (*rivertype.JobRow, error)
}

// JobClient is River as a step uses it, in the step's transaction: it enqueues jobs, and
// retries and cancels them. A *river.Client[pgx.Tx]; an insert-only one is enough.
type JobClient interface {
	JobInserter
	JobOperator
}

// JobParams names job ID of TenantID, or any job when TenantID is nil (the operator, from
// the CLI).
type JobParams struct {
	TenantID *uuid.UUID
	ID       int64
}

// JobTenant returns the tenant a job belongs to, as its metadata names it
// (jobargs.TenantJob), or nil for a job across tenants.
func JobTenant(job sql.RiverJob) (*uuid.UUID, error) {
	var metadata struct {
		TenantID *uuid.UUID `json:"tenant_id"`
	}
	if err := json.Unmarshal(job.Metadata, &metadata); err != nil {
		return nil, fmt.Errorf("job %d: decode metadata: %w", job.ID, err)
	}
	return metadata.TenantID, nil
}

// JobGet returns job p.ID of p.TenantID, or any job when p.TenantID is nil (the operator).
// Another tenant's job, or a job across tenants asked for by a tenant, is ErrNotFound, as a
// missing one is.
func JobGet(ctx context.Context, db sql.DBTX, p JobParams) (sql.RiverJob, error) {
	job, err := queries.JobGet(ctx, db, sql.JobGetParams{ID: p.ID, TenantID: p.TenantID})
	if err != nil {
		return sql.RiverJob{}, fmt.Errorf("job %d: %w", p.ID, err)
	}
	return job, nil
}

// JobRetry makes job p.ID of p.TenantID (any job when p.TenantID is nil) available to run
// again at once, with one more attempt if it had used them all (River's JobRetryTx, through
// st.Jobs), and records it in the job's tenant's audit log, in tx. Retrying a running job,
// or one already available, is ErrConflict, and so is retrying a unique job while an
// identical one waits or runs. It returns the job as it is after the retry.
func JobRetry(ctx context.Context, tx pgx.Tx, st Step, p JobParams) (sql.RiverJob, error) {
	id := p.ID
	return jobChange(ctx, tx, st, p, "job.retry", func(lock sql.JobLockRow) error {
		switch {
		case lock.State == sql.RiverJobStateRunning:
			return fmt.Errorf("%w: job %d is running; it cannot be retried until it finishes (cancel it first to stop it)", ErrJobState, id)
		case !lock.Retryable:
			return fmt.Errorf("%w: job %d is already %s: it runs as soon as a worker is free", ErrJobState, id, lock.State)
		}
		_, err := st.Jobs.JobRetryTx(ctx, tx, id)
		if errors.Is(err, ErrConflict) { // River's unique index on the unique jobs' key
			return fmt.Errorf("%w: job %d cannot be retried while an identical job (same kind and args) waits or runs: that job does its work", ErrJobDuplicate, id)
		}
		if err != nil {
			return fmt.Errorf("retry job %d: %w", id, err)
		}
		return nil
	})
}

// JobCancel cancels job p.ID of p.TenantID (any job when p.TenantID is nil) so that it is
// not run again (River's JobCancelTx, through st.Jobs): a job waiting to run is cancelled at
// once; a running job is signalled through its context and is cancelled when its attempt
// fails, or completes if its attempt succeeds. It records the cancel in the job's tenant's
// audit log, in tx. Cancelling a finished job (completed, cancelled or discarded) is
// ErrConflict. It returns the job as it is after the cancel.
func JobCancel(ctx context.Context, tx pgx.Tx, st Step, p JobParams) (sql.RiverJob, error) {
	id := p.ID
	return jobChange(ctx, tx, st, p, "job.cancel", func(lock sql.JobLockRow) error {
		if !lock.Cancellable {
			return fmt.Errorf("%w: job %d is already %s; only a job that has not finished can be cancelled", ErrJobState, id, lock.State)
		}
		if _, err := st.Jobs.JobCancelTx(ctx, tx, id); err != nil {
			return fmt.Errorf("cancel job %d: %w", id, err)
		}
		return nil
	})
}

// jobChange locks job p.ID of p.TenantID (any job when p.TenantID is nil), applies change
// and, when the job belongs to a tenant, appends action to that tenant's audit log; a job
// across tenants has no tenant's log (the CLI, the one way to change one, logs it).
func jobChange(ctx context.Context, tx pgx.Tx, st Step, p JobParams, action string, change func(sql.JobLockRow) error) (sql.RiverJob, error) {
	lock, err := queries.JobLock(ctx, tx, sql.JobLockParams{ID: p.ID, TenantID: p.TenantID})
	if err != nil {
		return sql.RiverJob{}, fmt.Errorf("job %d: %w", p.ID, err)
	}
	if err := change(lock); err != nil {
		return sql.RiverJob{}, err
	}
	job, err := JobGet(ctx, tx, JobParams{ID: p.ID})
	if err != nil {
		return sql.RiverJob{}, err
	}
	owner, err := JobTenant(job)
	if err != nil || owner == nil {
		return job, err
	}
	return job, Audit(ctx, tx, st, Change{TenantID: *owner,
		Action: action, SubjectType: "job", SubjectID: strconv.FormatInt(p.ID, 10),
		Details: map[string]string{"kind": job.Kind, "from_state": string(lock.State), "state": string(job.State)},
	})
}
