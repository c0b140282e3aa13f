package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/testdb"
)

// job is a job as the API shows it.
type job struct {
	ID          int64          `json:"id"`
	Kind        string         `json:"kind"`
	State       string         `json:"state"`
	Attempt     int            `json:"attempt"`
	MaxAttempts int            `json:"max_attempts"`
	Args        map[string]any `json:"args"`
	Tags        []string       `json:"tags"`
	Errors      []struct {
		Attempt int    `json:"attempt"`
		Error   string `json:"error"`
	} `json:"errors"`
}

// jobIDs returns the ids of jobs.
func jobIDs(jobs []job) []int64 {
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

// recompute is a tenant job of tenantID, unique per referrer.
func recompute(tenantID uuid.UUID) jobargs.ReferralRecompute {
	referrer := uuid.New()
	return jobargs.ReferralRecompute{TenantID: tenantID, ReferrerID: &referrer}
}

// jobAudits returns the job actions in tenantID's audit log about job id.
func jobAudits(t *testing.T, b *bundle, tenantID uuid.UUID, id int64) []string {
	t.Helper()
	rows, err := b.db.Query(context.Background(), `SELECT action FROM audit_log WHERE tenant_id = $1 AND subject_type = 'job'
		AND subject_id = $2 ORDER BY id`, tenantID, strconv.FormatInt(id, 10))
	require.NoError(t, err)
	var actions []string
	for rows.Next() {
		var a string
		require.NoError(t, rows.Scan(&a))
		actions = append(actions, a)
	}
	require.NoError(t, rows.Err())
	return actions
}

// jobState reads a job's state from River's table.
func jobState(t *testing.T, b *bundle, id int64) string {
	t.Helper()
	var state string
	require.NoError(t, b.db.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&state))
	return state
}

// TestJobsTenantIsolation: a tenant lists, reads, retries and cancels only its own jobs;
// another tenant's job and a job across tenants are 404, as a missing id is, and stay as
// they were.
func TestJobsTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := factory.Tenant(t, b.db)
	own := factory.Job(t, b.db, recompute(b.tenant.ID), rivertype.JobStateDiscarded)
	others := factory.Job(t, b.db, recompute(other.ID), rivertype.JobStateDiscarded)
	othersScheduled := factory.Job(t, b.db, jobargs.WebhookDeliver{TenantID: other.ID, EndpointID: uuid.New()}, rivertype.JobStateScheduled)
	sweep := factory.Job(t, b.db, jobargs.ReferralRecomputeSweep{}, rivertype.JobStateDiscarded)

	listed := decode[page[job]](t, b.request(t, http.MethodGet, "/v1/admin/jobs", ""))
	require.Equal(t, []int64{own}, jobIDs(listed.Items))
	require.Equal(t, []string{jobargs.TenantTag(b.tenant.ID)}, listed.Items[0].Tags)
	require.Equal(t, b.tenant.ID.String(), listed.Items[0].Args["tenant_id"])

	missing := requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/jobs/999999999", ""), http.StatusNotFound)
	require.Equal(t, "job 999999999: not found", missing.Detail)
	for _, id := range []int64{others, othersScheduled, sweep} {
		for _, op := range []struct{ method, path string }{
			{http.MethodGet, ""}, {http.MethodPost, "/retry"}, {http.MethodPost, "/cancel"},
		} {
			res := b.request(t, op.method, fmt.Sprintf("/v1/admin/jobs/%d%s", id, op.path), "")
			require.Equal(t, fmt.Sprintf("job %d: not found", id), requireProblem(t, res, http.StatusNotFound).Detail)
		}
	}
	require.Equal(t, "discarded", jobState(t, b, others))
	require.Equal(t, "scheduled", jobState(t, b, othersScheduled))
	require.Equal(t, "discarded", jobState(t, b, sweep))
	require.Empty(t, jobAudits(t, b, other.ID, others))
}

// TestJobsList filters by kind, state and time, and pages newest first.
func TestJobsList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var recomputes []int64
	for _, state := range []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateCompleted, rivertype.JobStateDiscarded} {
		recomputes = append(recomputes, factory.Job(t, b.db, recompute(b.tenant.ID), state))
	}
	deliver := factory.Job(t, b.db, jobargs.WebhookDeliver{TenantID: b.tenant.ID, EndpointID: uuid.New()}, rivertype.JobStateScheduled)
	_, err := b.db.Exec(ctx, `UPDATE river_job SET created_at = $2 WHERE id = $1`, recomputes[0], factory.Now.Add(-48*time.Hour))
	require.NoError(t, err)

	list := func(query string) []int64 {
		t.Helper()
		return jobIDs(collect[job](t, b, "/v1/admin/jobs?limit=1"+query))
	}
	require.Equal(t, []int64{deliver, recomputes[2], recomputes[1], recomputes[0]}, list(""), "newest first, a page of one at a time")
	require.Equal(t, []int64{recomputes[2], recomputes[1], recomputes[0]}, list("&kind=referral.recompute"))
	require.Empty(t, list("&kind=unknown.kind"))
	require.Equal(t, []int64{recomputes[2]}, list("&state=discarded"))
	require.Equal(t, []int64{recomputes[2]}, list("&kind=referral.recompute&state=discarded"))
	at := func(d time.Duration) string { return factory.Now.Add(d).UTC().Format(time.RFC3339) }
	require.Equal(t, []int64{recomputes[0]}, list("&created_to="+at(-time.Hour)))
	require.Equal(t, []int64{deliver, recomputes[2], recomputes[1]}, list("&created_from="+at(-time.Hour)))
	require.Equal(t, []int64{deliver}, list("&scheduled_from="+at(time.Minute)))
	require.Equal(t, []int64{recomputes[2], recomputes[1], recomputes[0]}, list("&scheduled_to="+at(time.Minute)))

	discarded := decode[job](t, b.request(t, http.MethodGet, fmt.Sprintf("/v1/admin/jobs/%d", recomputes[2]), ""))
	require.Equal(t, "referral.recompute", discarded.Kind)
	require.Equal(t, discarded.MaxAttempts, discarded.Attempt)
	require.Len(t, discarded.Errors, 1)
	require.Equal(t, "factory: attempt failed", discarded.Errors[0].Error)

	for _, query := range []string{"state=bogus", "after=abc", "after=-1", "limit=0", "limit=201", "created_from=yesterday"} {
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/jobs?"+query, ""), http.StatusUnprocessableEntity)
	}
	for _, path := range []string{"/v1/admin/jobs/abc", "/v1/admin/jobs/0", "/v1/admin/jobs/99999999999999999999"} {
		requireProblem(t, b.request(t, http.MethodGet, path, ""), http.StatusUnprocessableEntity)
	}
}

// TestJobsRetryCancel: a retry makes a failed or finished job available, a cancel stops a
// waiting one; both are audited, and what the job's state does not allow is a 409 that
// changes nothing.
func TestJobsRetryCancel(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		state     rivertype.JobState
		op        string
		wantState string
		refused   string
		twin      bool // an identical unique job waits
	}{
		{state: rivertype.JobStateDiscarded, op: "retry", wantState: "available"},
		{state: rivertype.JobStateRetryable, op: "retry", wantState: "available"},
		{state: rivertype.JobStateCancelled, op: "retry", wantState: "available"},
		{state: rivertype.JobStateCompleted, op: "retry", wantState: "available"},
		{state: rivertype.JobStateScheduled, op: "retry", wantState: "available"},
		{state: rivertype.JobStateRunning, op: "retry", refused: "is running; it cannot be retried until it finishes"},
		{state: rivertype.JobStateAvailable, op: "retry", refused: "is already available: it runs as soon as a worker is free"},
		{state: rivertype.JobStateScheduled, op: "cancel", wantState: "cancelled"},
		{state: rivertype.JobStateAvailable, op: "cancel", wantState: "cancelled"},
		{state: rivertype.JobStateRetryable, op: "cancel", wantState: "cancelled"},
		{state: rivertype.JobStateRunning, op: "cancel", wantState: "running"},
		{state: rivertype.JobStateCompleted, op: "cancel", refused: "is already completed; only a job that has not finished can be cancelled"},
		{state: rivertype.JobStateCancelled, op: "cancel", refused: "is already cancelled"},
		{state: rivertype.JobStateDiscarded, op: "cancel", refused: "is already discarded"},
		{state: rivertype.JobStateDiscarded, op: "retry", twin: true, refused: "cannot be retried while an identical job (same kind and args) waits or runs"},
	} {
		t.Run(fmt.Sprintf("%s/%s/twin=%t", tt.op, tt.state, tt.twin), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			args := recompute(b.tenant.ID)
			id := factory.Job(t, b.db, args, tt.state)
			if tt.twin {
				factory.Job(t, b.db, args, rivertype.JobStateAvailable)
			}
			res := b.request(t, http.MethodPost, fmt.Sprintf("/v1/admin/jobs/%d/%s", id, tt.op), "")
			if tt.refused != "" {
				code := api.CodeJobState
				if tt.twin {
					code = api.CodeJobDuplicate
				}
				require.Contains(t, requireCode(t, res, http.StatusConflict, code).Detail, fmt.Sprintf("job %d %s", id, tt.refused))
				require.Equal(t, string(tt.state), jobState(t, b, id))
				require.Empty(t, jobAudits(t, b, b.tenant.ID, id))
				return
			}
			require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
			require.Equal(t, tt.wantState, decode[job](t, res).State)
			require.Equal(t, tt.wantState, jobState(t, b, id))
			require.Equal(t, []string{"job." + tt.op}, jobAudits(t, b, b.tenant.ID, id))
			var actorID string
			var details map[string]string
			require.NoError(t, b.db.QueryRow(context.Background(), `SELECT actor_id, details FROM audit_log WHERE tenant_id = $1 AND subject_id = $2`,
				b.tenant.ID, strconv.FormatInt(id, 10)).Scan(&actorID, &details))
			require.Equal(t, b.keyID.String(), actorID)
			require.Equal(t, map[string]string{"kind": "referral.recompute", "from_state": string(tt.state), "state": tt.wantState}, details)
		})
	}
}

// TestJobsRetryRace: of concurrent retries of one discarded job, one retries it and the
// others find it available (409); the audit log has one retry. The requests wait together
// behind a lock on the job's row, taken on a connection of its own, so that each reads the
// job while the others do (as many as the server's pool has connections, less one).
func TestJobsRetryRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, databaseURL := testdb.Clone(t)
	b := newBundle(t, pool)
	srv := httptest.NewServer(b.handler)
	t.Cleanup(srv.Close)
	id := factory.Job(t, b.db, recompute(b.tenant.ID), rivertype.JobStateDiscarded)
	conn, err := pgx.Connect(ctx, databaseURL)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, conn.Close(ctx)) })
	hold, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = hold.Exec(ctx, `SELECT 1 FROM river_job WHERE id = $1 FOR UPDATE`, id)
	require.NoError(t, err)

	n := int(pool.Config().MaxConns) - 1
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i] = b.send(t, srv, http.MethodPost, fmt.Sprintf("/v1/admin/jobs/%d/retry", id), "").status
		})
	}
	require.Eventually(t, func() bool {
		var waiting int
		_, err := hold.Exec(ctx, `SELECT pg_stat_clear_snapshot()`) // a transaction sees the activity of its first look
		require.NoError(t, err)
		require.NoError(t, hold.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting))
		return waiting == n
	}, 10*time.Second, 10*time.Millisecond, "the retries never all waited for the job")
	require.NoError(t, hold.Commit(ctx))
	wg.Wait()

	require.Equal(t, 1, countOf(statuses, http.StatusOK), "statuses %v", statuses)
	require.Equal(t, n-1, countOf(statuses, http.StatusConflict), "statuses %v", statuses)
	require.Equal(t, "available", jobState(t, b, id))
	require.Equal(t, []string{"job.retry"}, jobAudits(t, b, b.tenant.ID, id))
}

// countOf returns how many of values are v.
func countOf(values []int, v int) int {
	n := 0
	for _, x := range values {
		if x == v {
			n++
		}
	}
	return n
}
