package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

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

// JobGet returns job id of tenantID, or any job when tenantID is nil (the operator). Another
// tenant's job, or a job across tenants asked for by a tenant, is ErrNotFound, as a missing
// one is.
func JobGet(ctx context.Context, db sql.DBTX, tenantID *uuid.UUID, id int64) (sql.RiverJob, error) {
	job, err := queries.JobGet(ctx, db, sql.JobGetParams{ID: id, TenantID: tenantID})
	if err != nil {
		return sql.RiverJob{}, fmt.Errorf("job %d: %w", id, DBError(err))
	}
	return job, nil
}

// JobRetry makes job id of tenantID (any job when tenantID is nil) available to run again at
// once, with one more attempt if it had used them all (River's JobRetryTx), and records it in
// the job's tenant's audit log, in tx. Retrying a running job, or one already available, is
// ErrConflict, and so is retrying a unique job while an identical one waits or runs. It
// returns the job as it is after the retry.
func JobRetry(ctx context.Context, tx pgx.Tx, jobs JobOperator, now time.Time, actor Actor, tenantID *uuid.UUID, id int64) (sql.RiverJob, error) {
	return jobChange(ctx, tx, now, actor, tenantID, id, "job.retry", func(lock sql.JobLockRow) error {
		switch {
		case lock.State == sql.RiverJobStateRunning:
			return fmt.Errorf("%w: job %d is running; it cannot be retried until it finishes (cancel it first to stop it)", ErrJobState, id)
		case !lock.Retryable:
			return fmt.Errorf("%w: job %d is already %s: it runs as soon as a worker is free", ErrJobState, id, lock.State)
		}
		_, err := jobs.JobRetryTx(ctx, tx, id)
		if errors.Is(DBError(err), ErrConflict) { // River's unique index on the unique jobs' key
			return fmt.Errorf("%w: job %d cannot be retried while an identical job (same kind and args) waits or runs: that job does its work", ErrJobDuplicate, id)
		}
		if err != nil {
			return fmt.Errorf("retry job %d: %w", id, err)
		}
		return nil
	})
}

// JobCancel cancels job id of tenantID (any job when tenantID is nil) so that it is not run
// again (River's JobCancelTx): a job waiting to run is cancelled at once; a running job is
// signalled through its context and is cancelled when its attempt fails, or completes if its
// attempt succeeds. It records the cancel in the job's tenant's audit log, in tx. Cancelling
// a finished job (completed, cancelled or discarded) is ErrConflict. It returns the job as it
// is after the cancel.
func JobCancel(ctx context.Context, tx pgx.Tx, jobs JobOperator, now time.Time, actor Actor, tenantID *uuid.UUID, id int64) (sql.RiverJob, error) {
	return jobChange(ctx, tx, now, actor, tenantID, id, "job.cancel", func(lock sql.JobLockRow) error {
		if !lock.Cancellable {
			return fmt.Errorf("%w: job %d is already %s; only a job that has not finished can be cancelled", ErrJobState, id, lock.State)
		}
		if _, err := jobs.JobCancelTx(ctx, tx, id); err != nil {
			return fmt.Errorf("cancel job %d: %w", id, err)
		}
		return nil
	})
}

// jobChange locks job id of tenantID (any job when tenantID is nil), applies change and,
// when the job belongs to a tenant, appends action to that tenant's audit log; a job across
// tenants has no tenant's log (the CLI, the one way to change one, logs it).
func jobChange(ctx context.Context, tx pgx.Tx, now time.Time, actor Actor, tenantID *uuid.UUID, id int64, action string,
	change func(sql.JobLockRow) error,
) (sql.RiverJob, error) {
	lock, err := queries.JobLock(ctx, tx, sql.JobLockParams{ID: id, TenantID: tenantID})
	if err != nil {
		return sql.RiverJob{}, fmt.Errorf("job %d: %w", id, DBError(err))
	}
	if err := change(lock); err != nil {
		return sql.RiverJob{}, err
	}
	job, err := JobGet(ctx, tx, nil, id)
	if err != nil {
		return sql.RiverJob{}, err
	}
	owner, err := JobTenant(job)
	if err != nil || owner == nil {
		return job, err
	}
	return job, Audit(ctx, tx, Step{Now: now, Actor: actor}, Change{TenantID: *owner,
		Action: action, SubjectType: "job", SubjectID: strconv.FormatInt(id, 10),
		Details: map[string]string{"kind": job.Kind, "from_state": string(lock.State), "state": string(job.State)},
	})
}
