package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
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
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/fakestore"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// revocationBundle is a revocation.check worker on a test transaction, a fake store and a
// tenant with a log channel and a connected store.
type revocationBundle struct {
	ctx    context.Context
	tx     pgx.Tx
	clock  *clock.Manual
	fake   *fakestore.Server
	store  sql.UpstreamStore
	worker *rivertest.Worker[jobargs.RevocationCheck, pgx.Tx]
}

func setupRevocation(t *testing.T, rc RevocationConfig, storeOpts ...func(*upstream.StoreCreateParams)) *revocationBundle {
	t.Helper()
	tx := testdb.Tx(t)
	t.Cleanup(func() { factory.RequireEventsDocumented(t, tx) })
	// Each test's transaction sees the one limiter row: start it from the past.
	_, err := tx.Exec(context.Background(), "UPDATE revocation_limiter SET next_allowed_at = '-infinity'")
	require.NoError(t, err)
	b := &revocationBundle{ctx: context.Background(), tx: tx, clock: clock.NewManual(factory.Now)}
	fake, srv := fakestore.New(t, "store-key")
	b.fake = fake
	tenant := factory.Tenant(t, tx)
	factory.LogChannel(t, tx, tenant.ID)
	b.store = factory.UpstreamStore(t, tx, tenant.ID, srv.URL, "store-key", storeOpts...)
	checker, err := newRevocationChecker(Config{DB: tx, Clock: b.clock, Log: slog.New(slog.DiscardHandler), Box: factory.Box, Revocation: rc, AllowPrivateNetworks: true})
	require.NoError(t, err)
	b.worker = rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &RevocationCheckWorker{revocationChecker: checker})
	return b
}

// fire runs one firing and returns the job's final state.
func (b *revocationBundle) fire(t *testing.T) rivertype.JobState {
	t.Helper()
	res, err := b.worker.Work(b.ctx, t, b.tx, jobargs.RevocationCheck{}, nil)
	require.NoError(t, err)
	return res.Job.State
}

// checks returns a licence's recorded outcomes and statuses, oldest first.
func (b *revocationBundle) checks(t *testing.T, licenseID uuid.UUID) []string {
	t.Helper()
	rows, err := b.tx.Query(b.ctx, "SELECT outcome::text, coalesce(upstream_status, 0) FROM upstream_license_checks WHERE tenant_id = $1 AND license_id = $2 ORDER BY id",
		b.store.TenantID, licenseID)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var outcome string
		var status int
		require.NoError(t, rows.Scan(&outcome, &status))
		out = append(out, fmt.Sprintf("%s/%d", outcome, status))
	}
	require.NoError(t, rows.Err())
	return out
}

func (b *revocationBundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.tx.QueryRow(b.ctx, query, args...).Scan(&n))
	return n
}

func TestRevocationCheckWorker(t *testing.T) {
	t.Parallel()
	acquired := factory.Now.Add(-30 * 24 * time.Hour)

	t.Run("Outcomes", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name    string
			prepare func(f *fakestore.Server)
			want    string
			gone    bool
		}{
			{"Exists", func(f *fakestore.Server) { f.Add("L1") }, "exists/200", false},
			{"Removed404", func(*fakestore.Server) {}, "gone/404", true},
			{"Forbidden403", func(f *fakestore.Server) { f.Force(http.StatusForbidden) }, "gone/403", true},
			{"ServerError500", func(f *fakestore.Server) { f.Force(http.StatusInternalServerError) }, "error/500", false},
			{"Unauthorized401", func(f *fakestore.Server) { f.Force(http.StatusUnauthorized) }, "error/401", false},
			{"Timeout", func(f *fakestore.Server) { f.Hang() }, "error/0", false},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setupRevocation(t, RevocationConfig{Timeout: 200 * time.Millisecond})
				ids := factory.UpstreamImport(t, b.tx, b.store, factory.UpstreamRow("L1", "u1", acquired))
				tt.prepare(b.fake)
				require.Equal(t, rivertype.JobStateCompleted, b.fire(t))
				require.Equal(t, []string{tt.want}, b.checks(t, ids["L1"]))
				events := b.count(t, "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'license.upstream_revoked'", b.store.TenantID)
				gone := b.count(t, "SELECT count(*) FROM upstream_licenses WHERE tenant_id = $1 AND gone_at IS NOT NULL", b.store.TenantID)
				if tt.gone {
					require.Equal(t, 1, events)
					require.Equal(t, 1, gone)
				} else {
					require.Equal(t, 0, events, "an error or an existing licence is not a revocation")
					require.Equal(t, 0, gone)
				}
				require.Equal(t, int64(1), b.fake.Requests())
			})
		}
	})

	t.Run("GoneEmitsOnceUnderRetry", func(t *testing.T) {
		t.Parallel()
		b := setupRevocation(t, RevocationConfig{}, func(p *upstream.StoreCreateParams) { p.RevokeOnGone = true })
		ids := factory.UpstreamImport(t, b.tx, b.store, factory.UpstreamRow("L1", "u1", acquired))
		b.fire(t)
		target, err := upstream.CheckTarget(b.ctx, b.tx, sql.UpstreamLicenseForCheckParams{TenantID: b.store.TenantID, LicenseID: ids["L1"]})
		require.NoError(t, err)
		// A retried job records the same answer again: nothing more happens.
		st := factory.Step()
		st.Now = b.clock.Now()
		require.NoError(t, upstream.RecordCheck(b.ctx, b.tx, st, upstream.RecordCheckParams{Target: target, Result: upstream.Result{Outcome: upstream.OutcomeGone, Status: 404}, Backoff: time.Minute}))
		b.clock.Advance(time.Hour)
		b.fire(t)
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'license.upstream_revoked'", b.store.TenantID))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'license.revoked'", b.store.TenantID))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM licenses WHERE tenant_id = $1 AND status = 'revoked'", b.store.TenantID),
			"the tenant chose to revoke: revoked in the same transaction")
		require.Equal(t, int64(1), b.fake.Requests(), "a gone licence is not checked again")
		var revoked, unrevoked int
		require.NoError(t, b.tx.QueryRow(b.ctx, "SELECT revoked_count, unrevoked_count FROM upstream_owner_stats WHERE tenant_id = $1", b.store.TenantID).Scan(&revoked, &unrevoked))
		require.Equal(t, []int{1, 0}, []int{revoked, unrevoked}, "the aggregates moved once")
	})

	t.Run("MinimumInterval", func(t *testing.T) {
		t.Parallel()
		b := setupRevocation(t, RevocationConfig{Interval: time.Second})
		b.fake.Add("L1")
		factory.UpstreamImport(t, b.tx, b.store, factory.UpstreamRow("L1", "u1", acquired))
		b.fire(t)
		require.Equal(t, int64(1), b.fake.Requests())
		b.clock.Advance(14 * time.Minute)
		b.fire(t)
		require.Equal(t, int64(1), b.fake.Requests(), "checked 14 minutes ago: not eligible")
		b.clock.Advance(time.Minute)
		b.fire(t)
		require.Equal(t, int64(2), b.fake.Requests(), "checked 15 minutes ago: eligible")
	})

	t.Run("ErrorBackoff", func(t *testing.T) {
		t.Parallel()
		b := setupRevocation(t, RevocationConfig{Interval: time.Second, ErrorBackoff: 2 * time.Minute})
		b.fake.Add("L1")
		b.fake.Force(http.StatusBadGateway)
		ids := factory.UpstreamImport(t, b.tx, b.store, factory.UpstreamRow("L1", "u1", acquired))
		b.fire(t)
		b.fake.Force(0)
		b.clock.Advance(time.Minute)
		b.fire(t)
		require.Equal(t, int64(1), b.fake.Requests(), "held back during the backoff")
		b.clock.Advance(time.Minute)
		b.fire(t)
		require.Equal(t, []string{"error/502", "exists/200"}, b.checks(t, ids["L1"]), "an error counts as checked only for the backoff")
	})

	t.Run("WithoutLogChannelNeverScanned", func(t *testing.T) {
		t.Parallel()
		b := setupRevocation(t, RevocationConfig{Interval: time.Second})
		other := factory.Tenant(t, b.tx)
		disabled := factory.LogChannel(t, b.tx, other.ID)
		_, err := b.tx.Exec(b.ctx, "UPDATE webhook_endpoints SET enabled = false WHERE tenant_id = $1 AND id = $2", other.ID, disabled.ID)
		require.NoError(t, err)
		_, srv := fakestore.New(t, "k")
		store := factory.UpstreamStore(t, b.tx, other.ID, srv.URL, "k")
		factory.UpstreamImport(t, b.tx, store, factory.UpstreamRow("X1", "u", acquired), factory.UpstreamRow("X2", "u", acquired))
		// A third tenant's endpoint listens to other events only.
		third := factory.Tenant(t, b.tx)
		_, err = b.tx.Exec(b.ctx, `INSERT INTO webhook_endpoints (tenant_id, id, url, event_types, enabled, secret_sealed, created_at, updated_at)
			VALUES ($1, $2, 'https://example.com/h', '{license.issued}', true, '\x00', $3, $3)`, third.ID, uuid.New(), factory.Now)
		require.NoError(t, err)
		store3 := factory.UpstreamStore(t, b.tx, third.ID, srv.URL, "k")
		factory.UpstreamImport(t, b.tx, store3, factory.UpstreamRow("Y1", "u", acquired))
		for range 5 {
			b.fire(t)
			b.clock.Advance(time.Hour)
		}
		require.Zero(t, b.count(t, "SELECT count(*) FROM upstream_license_checks WHERE tenant_id = ANY($1)", []uuid.UUID{other.ID, third.ID}))
	})

	t.Run("LateFiringKeepsTheNextWindow", func(t *testing.T) {
		t.Parallel()
		b := setupRevocation(t, RevocationConfig{Interval: time.Minute})
		b.fake.Add("L1", "L2")
		factory.UpstreamImport(t, b.tx, b.store, factory.UpstreamRow("L1", "u1", acquired), factory.UpstreamRow("L2", "u1", acquired))
		b.clock.Advance(5 * time.Second) // this window's firing runs late
		b.fire(t)
		b.clock.Advance(55 * time.Second) // the next one runs on time
		b.fire(t)
		require.Equal(t, int64(2), b.fake.Requests(), "a late firing does not push the next window back")
	})

	t.Run("PermitTakenDoesNothing", func(t *testing.T) {
		t.Parallel()
		b := setupRevocation(t, RevocationConfig{Interval: time.Minute, PerFiring: 2})
		b.fake.Add("L1", "L2", "L3")
		factory.UpstreamImport(t, b.tx, b.store, factory.UpstreamRow("L1", "u1", acquired),
			factory.UpstreamRow("L2", "u1", acquired), factory.UpstreamRow("L3", "u1", acquired))
		require.Equal(t, rivertype.JobStateCompleted, b.fire(t))
		require.Equal(t, int64(2), b.fake.Requests(), "PerFiring requests per firing")
		b.clock.Advance(59 * time.Second)
		require.Equal(t, rivertype.JobStateCompleted, b.fire(t))
		require.Equal(t, int64(2), b.fake.Requests(), "the interval's permit is taken")
		b.clock.Advance(time.Second)
		b.fire(t)
		require.Equal(t, int64(3), b.fake.Requests())
	})
}

// TestRevocationGlobalRate runs two River clients — two processes — with several workers
// each on one database, each given many revocation.check jobs, while the clock moves through
// ten intervals: the store never sees more than PerFiring requests per interval.
func TestRevocationGlobalRate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testdb.Clone(t)
	clk := clock.NewManual(factory.Now)
	fake, srv := fakestore.New(t, "k")
	tenant := factory.Tenant(t, pool)
	factory.LogChannel(t, pool, tenant.ID)
	store := factory.UpstreamStore(t, pool, tenant.ID, srv.URL, "k")
	var rows []upstream.Row
	for i := range 200 {
		id := fmt.Sprintf("L%03d", i)
		fake.Add(id)
		rows = append(rows, factory.UpstreamRow(id, fmt.Sprintf("u%d", i%20), factory.Now.Add(-time.Duration(i)*time.Hour)))
	}
	factory.UpstreamImport(t, pool, store, rows...)

	const perFiring, interval = 3, time.Minute
	var clients []*river.Client[pgx.Tx]
	for range 2 {
		workers, err := Workers(Config{DB: pool, Clock: clk, Log: slog.New(slog.DiscardHandler), Box: factory.Box, Payments: factory.FakeBTCPay(t, "").Client, Rates: factory.Rates(t),
			Revocation: RevocationConfig{Interval: interval, PerFiring: perFiring}, AllowPrivateNetworks: true})
		require.NoError(t, err)
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 5}},
			Workers: workers, Logger: slog.New(slog.DiscardHandler), FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond,
		})
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		t.Cleanup(func() { _ = client.Stop(context.WithoutCancel(ctx)) })
		clients = append(clients, client)
	}
	var mu sync.Mutex
	perStep := []int64{}
	for step := range 10 {
		before := fake.Requests()
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				params := make([]river.InsertManyParams, 4)
				for i := range params {
					params[i] = river.InsertManyParams{Args: jobargs.RevocationCheck{}}
				}
				_, err := c.InsertMany(ctx, params)
				require.NoError(t, err)
			}()
		}
		wg.Wait()
		// Wait until every job inserted so far is finished.
		deadline := clock.System{}.Now().Add(30 * time.Second)
		for {
			var open int
			require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'discarded', 'cancelled')").Scan(&open))
			if open == 0 {
				break
			}
			require.True(t, clock.System{}.Now().Before(deadline), "step %d: jobs did not finish", step)
			time.Sleep(10 * time.Millisecond) // polling for other processes' work, with a deadline
		}
		mu.Lock()
		perStep = append(perStep, fake.Requests()-before)
		mu.Unlock()
		clk.Advance(interval)
	}
	for i, n := range perStep {
		require.Equal(t, int64(perFiring), n, "interval %d: exactly PerFiring requests across both processes (%v)", i, perStep)
	}
}

// TestRevocationCheckSkipsSandboxes: the live check never picks a sandbox tenant's licence,
// even when it ranks first (acquired more recently), so it neither checks it nor stalls on
// it: the live tenant's licence is checked.
func TestRevocationCheckSkipsSandboxes(t *testing.T) {
	t.Parallel()
	b := setupRevocation(t, RevocationConfig{Timeout: 200 * time.Millisecond})
	live := factory.UpstreamImport(t, b.tx, b.store, factory.UpstreamRow("L1", "u1", factory.Now.Add(-30*24*time.Hour)))
	sandbox := factory.SandboxTenant(t, b.tx, factory.Now)
	factory.LogChannel(t, b.tx, sandbox.ID)
	sandboxStore := factory.UpstreamStore(t, b.tx, sandbox.ID, b.store.BaseURL, "store-key")
	sandboxed := factory.UpstreamImport(t, b.tx, sandboxStore, factory.UpstreamRow("L2", "u2", factory.Now.Add(-time.Hour)))
	b.fake.Add("L1")
	b.fake.Add("L2")

	require.Equal(t, rivertype.JobStateCompleted, b.fire(t))
	require.Equal(t, []string{"exists/200"}, b.checks(t, live["L1"]))
	require.Zero(t, b.count(t, "SELECT count(*) FROM upstream_license_checks WHERE tenant_id = $1 AND license_id = $2", sandbox.ID, sandboxed["L2"]))
}

// sandboxRevocation is a sandbox tenant beside setupRevocation's live one: its clock at
// factory.Now, its log channel, a store on the same fake store that revokes the licences it no
// longer knows, and the worker of its checks.
type sandboxRevocation struct {
	tenant sql.Tenant
	store  sql.UpstreamStore
	worker *rivertest.Worker[jobargs.RevocationCheckTenant, pgx.Tx]
}

func (b *revocationBundle) sandbox(t *testing.T, rc RevocationConfig) *sandboxRevocation {
	t.Helper()
	s := &sandboxRevocation{tenant: factory.SandboxTenant(t, b.tx, factory.Now)}
	factory.LogChannel(t, b.tx, s.tenant.ID)
	s.store = factory.UpstreamStore(t, b.tx, s.tenant.ID, b.store.BaseURL, "store-key", func(p *upstream.StoreCreateParams) { p.RevokeOnGone = true })
	checker, err := newRevocationChecker(Config{DB: b.tx, Clock: b.clock, Log: slog.New(slog.DiscardHandler), Box: factory.Box, Revocation: rc, AllowPrivateNetworks: true})
	require.NoError(t, err)
	s.worker = rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &RevocationCheckTenantWorker{revocationChecker: checker})
	return s
}

// advance moves the sandbox's clock to `to` as POST /v1/admin/clock/advance does, in one run.
func (s *sandboxRevocation) advance(t *testing.T, b *revocationBundle, to time.Time) {
	t.Helper()
	tenant, err := queries.TenantGet(b.ctx, b.tx, s.tenant.ID)
	require.NoError(t, err)
	st := factory.Step()
	st.Now = *tenant.ClockAt
	require.NoError(t, pg.InTx(b.ctx, b.tx, func(tx pgx.Tx) error {
		advance, err := core.ClockAdvanceStart(b.ctx, tx, st, core.ClockAdvanceParams{TenantID: s.tenant.ID, To: &to})
		if err != nil {
			return err
		}
		advance, err = core.ClockAdvanceRun(b.ctx, tx, st, core.ClockAdvanceRunParams{TenantID: s.tenant.ID, ID: advance.ID, Batch: 100})
		require.Equal(t, sql.ClockAdvanceStatusSucceeded, advance.Status)
		return err
	}))
}

// waiting is the sandbox's revocation.check_tenant jobs waiting to run, oldest first.
func (s *sandboxRevocation) waiting(t *testing.T, b *revocationBundle) []*rivertype.JobRow {
	t.Helper()
	rows, err := b.tx.Query(b.ctx, "SELECT id FROM river_job WHERE kind = $1 AND args->>'tenant_id' = $2 AND state = 'available' ORDER BY id",
		jobargs.RevocationCheckTenant{}.Kind(), s.tenant.ID.String())
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	jobs := make([]*rivertype.JobRow, len(ids))
	for i, id := range ids {
		jobs[i], err = factory.Jobs.JobGetTx(b.ctx, b.tx, id)
		require.NoError(t, err)
	}
	return jobs
}

// runChecks works the sandbox's waiting revocation.check_tenant jobs, and the next runs they
// enqueue, until none waits (at most 20), and returns how many runs there were.
func (s *sandboxRevocation) runChecks(t *testing.T, b *revocationBundle) int {
	t.Helper()
	runs := 0
	for jobs := s.waiting(t, b); len(jobs) > 0; jobs = s.waiting(t, b) {
		for _, job := range jobs {
			res, err := s.worker.WorkJob(b.ctx, t, b.tx, job)
			require.NoError(t, err)
			require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
			runs++
			require.Less(t, runs, 20, "the runs never ran out of licences due")
		}
	}
	return runs
}

// checkedAt is when each licence of the tenant was checked, by external id, in order.
func checkedAt(t *testing.T, b *revocationBundle, tenantID uuid.UUID) map[string][]time.Time {
	t.Helper()
	rows, err := b.tx.Query(b.ctx, `SELECT l.external_license_id, c.checked_at FROM upstream_license_checks c
		JOIN licenses l ON l.tenant_id = c.tenant_id AND l.id = c.license_id WHERE c.tenant_id = $1 ORDER BY c.id`, tenantID)
	require.NoError(t, err)
	out := map[string][]time.Time{}
	for rows.Next() {
		var id string
		var at time.Time
		require.NoError(t, rows.Scan(&id, &at))
		out[id] = append(out[id], at.UTC())
	}
	require.NoError(t, rows.Err())
	return out
}

// TestRevocationCheckTenant: a sandbox tenant's imported licences are checked after each
// advance of its clock, at the clock, by the job the advance's end enqueues — a batch per
// run, the next run enqueued while a batch is full — and never by the live loop; a live
// tenant's licences are not its job's.
func TestRevocationCheckTenant(t *testing.T) {
	t.Parallel()
	acquired := factory.Now.Add(-30 * 24 * time.Hour)

	t.Run("ChecksAtTheSandboxClock", func(t *testing.T) {
		t.Parallel()
		rc := RevocationConfig{PerFiring: 2}
		b := setupRevocation(t, rc)
		live := factory.UpstreamImport(t, b.tx, b.store, factory.UpstreamRow("LIVE", "u0", acquired))
		s := b.sandbox(t, rc)
		ids := factory.UpstreamImport(t, b.tx, s.store, factory.UpstreamRow("L1", "u1", acquired),
			factory.UpstreamRow("L2", "u1", acquired), factory.UpstreamRow("L3", "u2", acquired))
		b.fake.Add("L1", "L2") // L3 was refunded; so was LIVE, which the sandbox's job never asks about

		at := factory.Now.Add(time.Hour)
		s.advance(t, b, at)
		require.Len(t, s.waiting(t, b), 1, "the advance's end enqueued the sandbox's checks")
		require.Equal(t, 2, s.runChecks(t, b), "a full batch of two, then the one left")
		require.Equal(t, map[string][]time.Time{"L1": {at}, "L2": {at}, "L3": {at}}, checkedAt(t, b, s.tenant.ID))
		require.Equal(t, int64(3), b.fake.Requests())

		var status string
		var revokedAt, goneAt, eventAt time.Time
		require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT l.status::text, l.status_changed_at, ul.gone_at FROM licenses l
			JOIN upstream_licenses ul ON ul.tenant_id = l.tenant_id AND ul.license_id = l.id WHERE l.tenant_id = $1 AND l.id = $2`,
			s.tenant.ID, ids["L3"]).Scan(&status, &revokedAt, &goneAt))
		require.Equal(t, "revoked", status)
		require.True(t, at.Equal(revokedAt), "revoked at the sandbox's clock, not at %s", revokedAt)
		require.True(t, at.Equal(goneAt))
		for _, event := range []string{"license.upstream_revoked", "license.revoked"} {
			require.NoError(t, b.tx.QueryRow(b.ctx, "SELECT occurred_at FROM events WHERE tenant_id = $1 AND type = $2", s.tenant.ID, event).Scan(&eventAt))
			require.True(t, at.Equal(eventAt), "%s at the sandbox's clock", event)
		}
		require.Equal(t, 2, b.count(t, "SELECT count(*) FROM licenses WHERE tenant_id = $1 AND id = ANY($2) AND status = 'active'",
			s.tenant.ID, []uuid.UUID{ids["L1"], ids["L2"]}))
		require.Zero(t, b.count(t, "SELECT count(*) FROM upstream_license_checks WHERE tenant_id = $1", b.store.TenantID),
			"the live tenant's licence is not the sandbox job's")
		require.Equal(t, "active", licenseStatus(t, b, b.store.TenantID, live["LIVE"]))

		// The live loop checks its tenant's licence, and never the sandbox's, eligible as they
		// are by real time too.
		for range 3 {
			b.clock.Advance(time.Hour)
			b.fire(t)
		}
		require.Equal(t, []string{"gone/404"}, b.checks(t, live["LIVE"]))
		require.Len(t, checkedAt(t, b, s.tenant.ID)["L1"], 1)

		// By the sandbox's clock: within the minimum interval nothing is due; past it, the
		// licences not gone are checked again.
		s.advance(t, b, at.Add(14*time.Minute))
		require.Equal(t, 1, s.runChecks(t, b))
		require.Equal(t, int64(4), b.fake.Requests(), "checked 14 minutes ago by the sandbox's clock: not due")
		again := at.Add(15 * time.Minute)
		s.advance(t, b, again)
		require.Equal(t, 2, s.runChecks(t, b))
		require.Equal(t, map[string][]time.Time{"L1": {at, again}, "L2": {at, again}, "L3": {at}}, checkedAt(t, b, s.tenant.ID))
	})

	t.Run("LiveTenantJobChecksNothing", func(t *testing.T) {
		t.Parallel()
		b := setupRevocation(t, RevocationConfig{})
		factory.UpstreamImport(t, b.tx, b.store, factory.UpstreamRow("L1", "u1", acquired))
		s := b.sandbox(t, RevocationConfig{})
		res, err := s.worker.Work(b.ctx, t, b.tx, jobargs.RevocationCheckTenant{TenantID: b.store.TenantID}, nil)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Zero(t, b.fake.Requests(), "a live tenant's checks are the live loop's, under the global rate limit")
		require.Empty(t, s.waiting(t, b))
	})

	t.Run("NothingImportedNoJob", func(t *testing.T) {
		t.Parallel()
		b := setupRevocation(t, RevocationConfig{})
		s := b.sandbox(t, RevocationConfig{})
		s.advance(t, b, factory.Now.Add(time.Hour))
		require.Empty(t, s.waiting(t, b))
		gone := factory.UpstreamImport(t, b.tx, s.store, factory.UpstreamRow("L1", "u1", acquired))
		s.advance(t, b, factory.Now.Add(2*time.Hour))
		require.Equal(t, 2, s.runChecks(t, b), "a full batch of one, then a run that finds none due")
		require.Equal(t, "revoked", licenseStatus(t, b, s.tenant.ID, gone["L1"]))
		s.advance(t, b, factory.Now.Add(3*time.Hour))
		require.Empty(t, s.waiting(t, b), "its only licence is known gone: nothing to check")
	})
}

func licenseStatus(t *testing.T, b *revocationBundle, tenantID, licenseID uuid.UUID) string {
	t.Helper()
	var status string
	require.NoError(t, b.tx.QueryRow(b.ctx, "SELECT status::text FROM licenses WHERE tenant_id = $1 AND id = $2", tenantID, licenseID).Scan(&status))
	return status
}
