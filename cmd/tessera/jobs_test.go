package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// TestJobsCommands: with --tenant an operator sees and changes only that tenant's jobs;
// without it every job, the sweeps across tenants included. Retries and cancels of a tenant's
// job are in its audit log with the CLI as actor.
// jobsFixture is a database with two tenants' jobs and a sweep across tenants, which the
// commands run by execute use.
type jobsFixture struct {
	pool                                      *pgxpool.Pool
	a, b                                      sql.Tenant
	aDiscarded, aCompleted, bScheduled, sweep int64
}

// setupJobs makes the jobs fixture on a database of its own and points the commands at it.
func setupJobs(t *testing.T) jobsFixture {
	t.Helper()
	pool, databaseURL := testdb.Clone(t)
	f := jobsFixture{pool: pool, a: factory.Tenant(t, pool), b: factory.Tenant(t, pool)}
	referrer := uuid.New()
	f.aDiscarded = factory.Job(t, pool, jobargs.ReferralRecompute{TenantID: f.a.ID, ReferrerID: &referrer}, rivertype.JobStateDiscarded)
	f.aCompleted = factory.Job(t, pool, jobargs.ReferralRecompute{TenantID: f.a.ID}, rivertype.JobStateCompleted)
	f.bScheduled = factory.Job(t, pool, jobargs.WebhookDeliver{TenantID: f.b.ID, EndpointID: uuid.New()}, rivertype.JobStateScheduled)
	f.sweep = factory.Job(t, pool, jobargs.ReferralRecomputeSweep{}, rivertype.JobStateDiscarded)
	useDatabase(t, databaseURL)
	return f
}

//nolint:paralleltest // each subtest points the commands at its database with t.Setenv (useDatabase)
func TestJobsCommands(t *testing.T) {
	t.Run("List", func(t *testing.T) {
		f := setupJobs(t)
		a, b, aDiscarded, aCompleted, bScheduled, sweep := f.a, f.b, f.aDiscarded, f.aCompleted, f.bScheduled, f.sweep
		all := listJobIDs(t, "jobs", "list")
		require.Equal(t, []string{id(sweep), id(bScheduled), id(aCompleted), id(aDiscarded)}, all)
		out := mustExecute(t, "jobs", "list")
		require.Regexp(t, `(?m)^ID\s+KIND\s+STATE\s+ATTEMPT\s+TENANT\s+CREATED\s+SCHEDULED$`, out)
		require.Regexp(t, fmt.Sprintf(`(?m)^%d\s+referral.recompute_sweep\s+discarded\s+25/25\s+-\s`, sweep), out)
		require.Regexp(t, fmt.Sprintf(`(?m)^%d\s+webhook.deliver\s+scheduled\s+0/5\s+%s\s`, bScheduled, b.Slug), out)

		require.Equal(t, []string{id(aCompleted), id(aDiscarded)}, listJobIDs(t, "jobs", "list", "--tenant", a.Slug))
		require.Equal(t, []string{id(aDiscarded)}, listJobIDs(t, "jobs", "list", "--tenant", a.Slug, "--state", "discarded"))
		require.Equal(t, []string{id(sweep), id(aDiscarded)}, listJobIDs(t, "jobs", "list", "--state", "discarded"))
		require.Equal(t, []string{id(bScheduled)}, listJobIDs(t, "jobs", "list", "--kind", "webhook.deliver"))
		require.Equal(t, []string{id(bScheduled)}, listJobIDs(t, "jobs", "list", "--scheduled-from", factory.Now.Add(time.Minute).Format(time.RFC3339)))
		require.Equal(t, []string{id(sweep)}, listJobIDs(t, "jobs", "list", "--limit", "1"))
		require.Equal(t, []string{id(bScheduled)}, listJobIDs(t, "jobs", "list", "--limit", "1", "--after", id(sweep)))

		out = mustExecute(t, "jobs", "list", "--tenant", a.Slug, "--json")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 2)
		var job struct {
			ID   int64    `json:"id"`
			Tags []string `json:"tags"`
		}
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &job))
		require.Equal(t, aCompleted, job.ID)
		require.Equal(t, []string{jobargs.TenantTag(a.ID)}, job.Tags)
	})

	t.Run("Show", func(t *testing.T) {
		f := setupJobs(t)
		a, aDiscarded, bScheduled, sweep := f.a, f.aDiscarded, f.bScheduled, f.sweep
		out := mustExecute(t, "jobs", "show", "--tenant", a.Slug, id(aDiscarded))
		require.Regexp(t, `(?m)^Kind:\s+referral.recompute$`, out)
		require.Regexp(t, `(?m)^Tenant:\s+`+a.Slug+`$`, out)
		require.Regexp(t, `(?m)^Error:\s+attempt 1 at .*: factory: attempt failed$`, out)
		require.Regexp(t, `(?m)^Tenant:\s+- \(across tenants\)$`, mustExecute(t, "jobs", "show", id(sweep)))

		_, err := execute(t, "jobs", "show", "--tenant", a.Slug, id(bScheduled))
		require.ErrorIs(t, err, core.ErrNotFound)
		_, err = execute(t, "jobs", "show", "--tenant", a.Slug, id(sweep))
		require.ErrorIs(t, err, core.ErrNotFound)
	})

	t.Run("RetryCancel", func(t *testing.T) {
		f := setupJobs(t)
		pool, a, b, aDiscarded, aCompleted, bScheduled, sweep := f.pool, f.a, f.b, f.aDiscarded, f.aCompleted, f.bScheduled, f.sweep
		_, err := execute(t, "jobs", "retry", "--tenant", a.Slug, id(bScheduled))
		require.ErrorIs(t, err, core.ErrNotFound)
		_, err = execute(t, "jobs", "cancel", "--tenant", a.Slug, id(sweep))
		require.ErrorIs(t, err, core.ErrNotFound)

		out := mustExecute(t, "jobs", "retry", "--tenant", a.Slug, id(aDiscarded))
		require.Equal(t, fmt.Sprintf("retried job %d (referral.recompute, %s): now available\n", aDiscarded, a.Slug), out)
		require.Equal(t, []string{"cli job.retry"}, jobAuditLog(t, pool, a.ID, aDiscarded))

		out = mustExecute(t, "jobs", "cancel", id(bScheduled))
		require.Equal(t, fmt.Sprintf("cancelled job %d (webhook.deliver, %s): now cancelled\n", bScheduled, b.Slug), out)
		require.Equal(t, []string{"cli job.cancel"}, jobAuditLog(t, pool, b.ID, bScheduled), "the job's tenant's log, though no --tenant was given")

		out = mustExecute(t, "jobs", "retry", id(sweep))
		require.Equal(t, fmt.Sprintf("retried job %d (referral.recompute_sweep, across tenants): now available\n", sweep), out)
		require.Equal(t, 0, count(t, pool, "audit_log WHERE subject_type = 'job' AND subject_id = '"+id(sweep)+"'"))

		_, err = execute(t, "jobs", "cancel", "--tenant", a.Slug, id(aCompleted))
		require.ErrorIs(t, err, core.ErrConflict)
		require.ErrorContains(t, err, "is already completed")
		_, err = execute(t, "jobs", "retry", id(aDiscarded))
		require.ErrorIs(t, err, core.ErrConflict)
		require.ErrorContains(t, err, "is already available")
	})

	t.Run("BadInput", func(t *testing.T) {
		setupJobs(t)
		for _, args := range [][]string{
			{"jobs", "list", "--state", "bogus"}, {"jobs", "list", "--limit", "0"}, {"jobs", "list", "--after", "-1"},
			{"jobs", "list", "--created-from", "yesterday"}, {"jobs", "show", "abc"}, {"jobs", "retry", "0"},
			{"jobs", "list", "--tenant", "unknown"},
		} {
			_, err := execute(t, args...)
			require.Error(t, err, "tessera %v", args)
		}
	})
}

// id formats a job id as the commands take it.
func id(jobID int64) string { return strconv.FormatInt(jobID, 10) }

// listJobIDs runs a jobs list command and returns the ids it lists, in order.
func listJobIDs(t *testing.T, args ...string) []string {
	t.Helper()
	ids := []string{}
	for _, line := range strings.Split(mustExecute(t, args...), "\n")[1:] {
		if fields := strings.Fields(line); len(fields) > 0 {
			ids = append(ids, fields[0])
		}
	}
	return ids
}

// jobAuditLog returns "actor_type action" of tenantID's audit log entries about job jobID.
func jobAuditLog(t *testing.T, pool *pgxpool.Pool, tenantID uuid.UUID, jobID int64) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT actor_type || ' ' || action FROM audit_log WHERE tenant_id = $1 AND subject_type = 'job'
		AND subject_id = $2 ORDER BY id`, tenantID, id(jobID))
	require.NoError(t, err)
	var entries []string
	for rows.Next() {
		var e string
		require.NoError(t, rows.Scan(&e))
		entries = append(entries, e)
	}
	require.NoError(t, rows.Err())
	return entries
}
