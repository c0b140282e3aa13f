package jobs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// sweepBundle is what an idempotency sweep test needs: a worker running in the test's
// rolled-back transaction, two tenants and a record of what each of the worker's
// transactions held when it committed.
type sweepBundle struct {
	clock   *clock.Manual
	tx      pgx.Tx
	tenantA sql.Tenant
	tenantB sql.Tenant
	worker  *rivertest.Worker[jobargs.IdempotencyExpireSweep, pgx.Tx]
	client  *river.Client[pgx.Tx]
	probe   *commitProbe
}

// setupSweep returns a bundle whose worker deletes at most batch keys per run.
func setupSweep(t *testing.T, batch int) *sweepBundle {
	t.Helper()
	tx := testdb.Tx(t)
	b := &sweepBundle{
		clock:   clock.NewManual(factory.Now),
		tx:      tx,
		tenantA: factory.Tenant(t, tx),
		tenantB: factory.Tenant(t, tx),
		probe:   &commitProbe{DB: tx},
	}
	worker := &IdempotencyExpireSweepWorker{cfg: Config{
		DB:      b.probe,
		Clock:   b.clock,
		Log:     slog.New(slog.DiscardHandler),
		Batches: SweepBatches{IdempotencyExpire: batch},
	}}
	riverConfig := &river.Config{Logger: slog.New(slog.DiscardHandler)}
	b.worker = rivertest.NewWorker(t, riverpgxv5.New(nil), riverConfig, worker)
	client, err := river.NewClient(riverpgxv5.New(nil), riverConfig)
	require.NoError(t, err)
	b.client = client
	return b
}

// storeKey stores a response for key under tenant, expiring at expiresAt.
func (b *sweepBundle) storeKey(t *testing.T, tenant sql.Tenant, key string, expiresAt time.Time) {
	t.Helper()
	err := queries.IdempotencyKeyStore(context.Background(), b.tx, sql.IdempotencyKeyStoreParams{
		TenantID:        tenant.ID,
		Scope:           "admin",
		Key:             key,
		RequestHash:     make([]byte, 32),
		ResponseStatus:  201,
		ResponseHeaders: []byte(`{}`),
		ResponseBody:    []byte(`{}`),
		Now:             expiresAt.Add(-24 * time.Hour),
		ExpiresAt:       expiresAt,
	})
	require.NoError(t, err)
}

// keys returns the keys left for the bundle's tenants, as "tenant/key" with tenant "a" or
// "b", sorted.
func (b *sweepBundle) keys(t *testing.T) []string {
	t.Helper()
	rows, err := b.tx.Query(context.Background(), `
		SELECT CASE tenant_id WHEN $1 THEN 'a' ELSE 'b' END || '/' || key
		FROM idempotency_keys WHERE tenant_id = ANY($2::uuid[]) ORDER BY 1`,
		b.tenantA.ID, []uuid.UUID{b.tenantA.ID, b.tenantB.ID})
	require.NoError(t, err)
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return keys
}

// work runs one sweep and requires that it succeeded.
func (b *sweepBundle) work(t *testing.T) *rivertest.WorkResult {
	t.Helper()
	res, err := b.worker.Work(context.Background(), t, b.tx, jobargs.IdempotencyExpireSweep{}, nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
	return res
}

// sweepJobs returns the sweep jobs in the test's transaction, in insertion order.
func (b *sweepBundle) sweepJobs(t *testing.T) []jobState {
	t.Helper()
	jobs, err := sweepJobs(context.Background(), b.tx)
	require.NoError(t, err)
	return jobs
}

// jobState is a job's id and state.
type jobState struct {
	ID    int64
	State rivertype.JobState
}

// sweepJobs returns the idempotency.expire_sweep jobs visible to db, in insertion order.
func sweepJobs(ctx context.Context, db sql.DBTX) ([]jobState, error) {
	rows, err := db.Query(ctx, `SELECT id, state::text FROM river_job WHERE kind = $1 ORDER BY id`,
		jobargs.IdempotencyExpireSweep{}.Kind())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (jobState, error) {
		var j jobState
		err := row.Scan(&j.ID, &j.State)
		return j, err
	})
}

// commitProbe is the worker's DB: it begins the worker's transactions on the test's
// transaction and, just before each commits, records the sweep jobs the worker's
// transaction holds. With fail set, it refuses the commit instead.
type commitProbe struct {
	pg.DB
	mu      sync.Mutex
	fail    bool
	commits [][]jobState
}

// Begin begins a probed transaction.
func (p *commitProbe) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := p.DB.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &probedTx{Tx: tx, probe: p}, nil
}

// probedTx is a worker's transaction watched by a commitProbe.
type probedTx struct {
	pgx.Tx
	probe *commitProbe
}

var errCommitRefused = errors.New("commit refused by the test")

// Commit records the sweep jobs visible in the transaction, then commits it unless the
// probe refuses.
func (tx *probedTx) Commit(ctx context.Context) error {
	jobs, err := sweepJobs(ctx, tx.Tx)
	if err != nil {
		return err
	}
	tx.probe.mu.Lock()
	defer tx.probe.mu.Unlock()
	tx.probe.commits = append(tx.probe.commits, jobs)
	if tx.probe.fail {
		return errCommitRefused
	}
	return tx.Tx.Commit(ctx)
}

// lastCommit returns what the worker's last committed transaction held.
func (p *commitProbe) lastCommit(t *testing.T) []jobState {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	require.NotEmpty(t, p.commits, "the worker committed no transaction")
	return p.commits[len(p.commits)-1]
}

func TestIdempotencyExpireSweepWorker(t *testing.T) {
	t.Parallel()

	t.Run("DeletesExpiredKeysOfEveryTenant", func(t *testing.T) {
		t.Parallel()
		b := setupSweep(t, 10000)
		now := b.clock.Now()
		b.storeKey(t, b.tenantA, "expired", now.Add(-time.Hour))
		b.storeKey(t, b.tenantA, "expires-now", now)
		b.storeKey(t, b.tenantA, "live", now.Add(time.Microsecond))
		b.storeKey(t, b.tenantB, "expired", now.Add(-time.Second))
		b.storeKey(t, b.tenantB, "live", now.Add(time.Hour))
		// A sandbox whose clock stands a day back keeps its key until its own time expires it.
		sandbox := factory.SandboxTenant(t, b.tx, now.Add(-24*time.Hour))
		b.storeKey(t, sandbox, "sandbox", now.Add(-time.Hour))

		res := b.work(t)

		require.Equal(t, []string{"a/live", "b/live"}, b.keys(t))
		var kept int
		require.NoError(t, b.tx.QueryRow(context.Background(), "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", sandbox.ID).Scan(&kept))
		require.Equal(t, 1, kept, "a sandbox's key expires by its clock")
		require.Equal(t, []jobState{{ID: res.Job.ID, State: rivertype.JobStateCompleted}}, b.sweepJobs(t),
			"a sweep that did not fill its batch enqueues no follow-up")
	})

	t.Run("CompletesJobInItsTransaction", func(t *testing.T) {
		t.Parallel()
		b := setupSweep(t, 10000)
		b.storeKey(t, b.tenantA, "expired", b.clock.Now().Add(-time.Hour))

		res := b.work(t)

		require.Equal(t, []jobState{{ID: res.Job.ID, State: rivertype.JobStateCompleted}}, b.probe.lastCommit(t),
			"the job is completed inside the transaction that deleted the keys, before it commits")
	})

	t.Run("RollsBackDeletesAndCompletionTogether", func(t *testing.T) {
		t.Parallel()
		b := setupSweep(t, 10000)
		b.storeKey(t, b.tenantA, "expired", b.clock.Now().Add(-time.Hour))
		b.probe.fail = true

		res, err := b.worker.Work(context.Background(), t, b.tx, jobargs.IdempotencyExpireSweep{}, nil)

		require.ErrorIs(t, err, errCommitRefused)
		require.Equal(t, river.EventKindJobFailed, res.EventKind)
		require.NotEqual(t, rivertype.JobStateCompleted, res.Job.State, "the completion rolled back too")
		require.Len(t, res.Job.Errors, 1)
		require.Contains(t, res.Job.Errors[0].Error, errCommitRefused.Error())
		require.Equal(t, []string{"a/expired"}, b.keys(t), "the delete rolled back with the failed transaction")
	})

	t.Run("FullBatchEnqueuesNextSweepInSameTransaction", func(t *testing.T) {
		t.Parallel()
		b := setupSweep(t, 2)
		now := b.clock.Now()
		b.storeKey(t, b.tenantA, "k1", now.Add(-5*time.Hour))
		b.storeKey(t, b.tenantB, "k2", now.Add(-4*time.Hour))
		b.storeKey(t, b.tenantA, "k3", now.Add(-3*time.Hour))
		b.storeKey(t, b.tenantB, "k4", now.Add(-2*time.Hour))
		b.storeKey(t, b.tenantA, "k5", now.Add(-1*time.Hour))
		b.storeKey(t, b.tenantB, "live", now.Add(time.Hour))

		res := b.work(t)

		require.Equal(t, []string{"a/k3", "a/k5", "b/k4", "b/live"}, b.keys(t), "the two oldest expired keys go first")
		jobs := rivertest.RequireManyInsertedTx[*riverpgxv5.Driver](context.Background(), t, b.tx, []rivertest.ExpectedJob{
			{Args: jobargs.IdempotencyExpireSweep{}, Opts: &rivertest.RequireInsertedOpts{State: rivertype.JobStateCompleted}},
			{Args: jobargs.IdempotencyExpireSweep{}, Opts: &rivertest.RequireInsertedOpts{State: rivertype.JobStateAvailable}},
		})
		require.Equal(t, res.Job.ID, jobs[0].ID)
		require.Equal(t, []jobState{
			{ID: res.Job.ID, State: rivertype.JobStateCompleted},
			{ID: jobs[1].ID, State: rivertype.JobStateAvailable},
		}, b.probe.lastCommit(t), "the follow-up is inserted in the sweep's transaction")
	})

	t.Run("FollowUpsDrainTheBacklog", func(t *testing.T) {
		t.Parallel()
		b := setupSweep(t, 2)
		now := b.clock.Now()
		for i, key := range []string{"k1", "k2", "k3", "k4", "k5"} {
			b.storeKey(t, b.tenantA, key, now.Add(-time.Duration(i+1)*time.Minute))
		}
		b.storeKey(t, b.tenantB, "live", now.Add(time.Hour))

		b.work(t)
		for runs := 1; ; runs++ {
			jobs := b.sweepJobs(t)
			next := jobs[len(jobs)-1]
			if next.State != rivertype.JobStateAvailable {
				require.Equal(t, 3, runs, "5 keys in batches of 2 take 3 sweeps")
				break
			}
			require.Less(t, runs, 3, "more follow-ups than batches")
			row, err := b.client.JobGetTx(context.Background(), b.tx, next.ID)
			require.NoError(t, err)
			res, err := b.worker.WorkJob(context.Background(), t, b.tx, row)
			require.NoError(t, err)
			require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		}

		require.Equal(t, []string{"b/live"}, b.keys(t))
	})

	t.Run("NothingExpiredDeletesAndEnqueuesNothing", func(t *testing.T) {
		t.Parallel()
		b := setupSweep(t, 2)
		now := b.clock.Now()
		b.storeKey(t, b.tenantA, "expired", now.Add(-time.Hour))
		b.storeKey(t, b.tenantA, "live", now.Add(time.Hour))
		b.storeKey(t, b.tenantB, "live", now.Add(2*time.Hour))
		first := b.work(t)

		second := b.work(t)

		require.Equal(t, []string{"a/live", "b/live"}, b.keys(t))
		require.Equal(t, []jobState{
			{ID: first.Job.ID, State: rivertype.JobStateCompleted},
			{ID: second.Job.ID, State: rivertype.JobStateCompleted},
		}, b.sweepJobs(t))
	})

	t.Run("ExpiresByTheClock", func(t *testing.T) {
		t.Parallel()
		b := setupSweep(t, 10000)
		now := b.clock.Now()
		b.storeKey(t, b.tenantA, "soon", now.Add(time.Minute))
		b.storeKey(t, b.tenantB, "later", now.Add(time.Hour))

		b.work(t)
		require.Equal(t, []string{"a/soon", "b/later"}, b.keys(t))

		b.clock.Advance(time.Minute)
		b.work(t)
		require.Equal(t, []string{"b/later"}, b.keys(t))
	})
}
