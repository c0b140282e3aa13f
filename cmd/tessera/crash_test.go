package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/fakebtcpay"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// The crash tests run workers as real processes, `tessera worker` re-executed from the test
// binary (TestMain), with short job timeouts so that a killed worker's jobs are rescued in
// seconds. The longest of these timeouts is revocation.check's, 1 × (1 s + 5 s) + 5 s = 11 s.
var crashEnv = map[string]string{
	"TESSERA_WORKERS":                 "4",
	"TESSERA_JOB_TIMEOUT":             "5s",
	"TESSERA_WEBHOOK_TIMEOUT":         "1s",
	"TESSERA_REVOCATION_TIMEOUT":      "1s",
	"TESSERA_RESCUE_STUCK_JOBS_AFTER": crashRescueAfter.String(),
	"TESSERA_DB_MAX_CONNS":            "10",
	"TESSERA_LOG_LEVEL":               "warn",
	"TESSERA_METRICS_ADDR":            "127.0.0.1:0", // two workers run at once
}

// crashRescueAfter is the crash tests' TESSERA_RESCUE_STUCK_JOBS_AFTER.
const crashRescueAfter = 12 * time.Second

// recoveryBound is the README's bound on how long after a process died its orphaned first
// attempts have run again: TESSERA_RESCUE_STUCK_JOBS_AFTER plus one minute (River's rescuer
// runs every 30 s on the leader, a dead leader is replaced within about 20 s, and a rescued
// job waits its kind's first retry backoff, 10 s at most, and River's scheduler, 5 s at most).
const recoveryBound = crashRescueAfter + time.Minute

// crashStart bounds the wait for the first worker to start its work.
const crashStart = 30 * time.Second

// crashSubscriptions is how many subscriptions are due when the first worker starts.
const crashSubscriptions = 24

// TestCrashRecovery kills a worker process with SIGKILL in the middle of a renewal run — once
// while renewals are in their transactions, once while invoices are being created at the
// provider — then starts a second worker process. Without anyone's help it must finish
// everything exactly once: one cycle per subscription, one PayIn per cycle, one invoice per
// PayIn (in the database and at the provider), and, once the buyers paid, payouts that
// balance each PayIn; and the killed worker's orphaned jobs must have run again within
// recoveryBound.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name string
		// interrupt starts the first worker and kills it in the middle of its work.
		interrupt func(t *testing.T, c *crash)
	}{
		{
			// The renewal sweep, which renews its batch in its own transaction, waits on a
			// lock of subscription_cycles when the worker dies: its job stays running.
			name: "MidRenewals",
			interrupt: func(t *testing.T, c *crash) {
				ctx := t.Context()
				lock, err := c.pool.Begin(ctx)
				require.NoError(t, err)
				defer lock.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // released once the worker is dead
				_, err = lock.Exec(ctx, "LOCK TABLE subscription_cycles IN EXCLUSIVE MODE")
				require.NoError(t, err)
				var lockPID int
				require.NoError(t, lock.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&lockPID))

				worker := c.start(t, "first")
				c.poll(t, crashStart, "no renewal waited on the lock", func() bool {
					var waiting int
					err := c.pool.QueryRow(ctx, `
						SELECT count(*) FROM pg_stat_activity
						WHERE wait_event_type = 'Lock' AND $1 = ANY (pg_blocking_pids(pid))`, lockPID).Scan(&waiting)
					return err == nil && waiting >= 1
				})
				worker.kill(t)
			},
		},
		{
			// The provider has created invoices but their answers have not reached the
			// worker when it dies: the retries must find them, not create more.
			name: "MidInvoiceCreation",
			interrupt: func(t *testing.T, c *crash) {
				c.provider.hold(3)
				worker := c.start(t, "first")
				c.poll(t, crashStart, "no invoice creation was held", func() bool { return c.provider.holding() >= 2 })
				worker.kill(t)
				c.provider.hold(-1)
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := setupCrash(t)

			tt.interrupt(t, c)
			killedAt := clock.System{}.Now()
			// The dead worker's transactions end once Postgres notices: then its jobs still
			// running are orphans.
			c.poll(t, waitFor, "the dead worker's connections stayed", func() bool {
				return c.count(t, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'first'`) == 0
			})
			orphans := c.jobIDs(t, "state = 'running'")
			require.NotEmpty(t, orphans, "the worker died with jobs running")

			second := c.start(t, "second")
			c.poll(t, recoveryBound, "the second worker did not finish the renewals and the orphaned jobs", func() bool {
				return c.count(t, `SELECT count(*) FROM payin_invoices WHERE tenant_id = $1`, c.tenant.ID) == crashSubscriptions &&
					len(c.jobIDs(t, "id = ANY($1) AND finalized_at IS NULL", orphans)) == 0
			})
			recovery := time.Since(killedAt)
			require.Less(t, recovery, recoveryBound)
			t.Logf("%d orphaned jobs; they and every renewal's invoice were done %s after the kill (bound %s)", len(orphans), recovery.Round(100*time.Millisecond), recoveryBound)
			rescued := c.jobIDs(t, "id = ANY($1) AND state = 'completed' AND errors::text LIKE '%Stuck job rescued by JobRescuer%'", orphans)
			require.ElementsMatch(t, orphans, rescued, "every orphaned job was rescued and completed")

			c.pay(t)
			c.poll(t, waitFor, "the renewals were not all paid", func() bool {
				return c.count(t, `SELECT count(*) FROM subscriptions WHERE tenant_id = $1 AND status = 'active'`, c.tenant.ID) == crashSubscriptions
			})
			second.stop(t)
			c.requireExactlyOnce(t)
		})
	}
}

// crash is a crash test's bundle: a database with due subscriptions, the fake provider in
// front of which invoice creations can be held, and the environment of worker processes.
type crash struct {
	pool        *pgxpool.Pool
	databaseURL string
	tenant      sql.Tenant
	provider    *heldProvider
	env         []string // but DATABASE_URL
}

// setupCrash creates crashSubscriptions subscriptions priced 50,000 sats whose first
// renewal is due, on their own database.
func setupCrash(t *testing.T) *crash {
	t.Helper()
	pool, databaseURL := testdb.Clone(t)
	tenant := dueSubscriptions(t, pool, crashSubscriptions)
	provider := newHeldProvider(t)
	env := append(os.Environ(),
		childEnv+"=worker",
		"TESSERA_SECRET_KEY="+factory.SecretKey,
		"TESSERA_BTCPAY_URL="+provider.url,
		"TESSERA_BTCPAY_STORE_ID="+heldStore,
		"TESSERA_BTCPAY_API_KEY="+heldAPIKey,
		"TESSERA_BTCPAY_WEBHOOK_SECRET="+heldWebhookSecret,
	)
	for k, v := range crashEnv {
		env = append(env, k+"="+v)
	}
	return &crash{pool: pool, databaseURL: databaseURL, tenant: tenant, provider: provider, env: env}
}

// dueSubscriptions creates a tenant with n subscriptions priced 50,000 sats whose first
// renewal is due by the real clock, which worker processes use.
func dueSubscriptions(t *testing.T, pool *pgxpool.Pool, n int) sql.Tenant {
	t.Helper()
	tenant := factory.Tenant(t, pool)
	policy := factory.Policy(t, pool, tenant.ID, factory.PolicyRecurring(30), factory.PolicyPrice(sql.CurrencySAT, 50_000), factory.PolicyGraceDays(7))
	// Started 30 days and a minute ago.
	st := core.Step{Now: clock.System{}.Now().AddDate(0, 0, -30).Add(-time.Minute), Actor: factory.Actor, Box: factory.Box, Jobs: factory.Jobs}
	for range n {
		customer := factory.Customer(t, pool, tenant.ID)
		err := pg.InTx(t.Context(), pool, func(tx pgx.Tx) error {
			_, _, err := core.SubscriptionCreate(t.Context(), tx, st, core.SubscriptionCreateParams{TenantID: tenant.ID, CustomerID: customer.ID, PolicyID: policy.ID})
			return err
		})
		require.NoError(t, err)
	}
	return tenant
}

// poll checks cond every 20 ms until it holds, failing the test after deadline.
func (c *crash) poll(t *testing.T, deadline time.Duration, msg string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, deadline, 20*time.Millisecond, msg)
}

// count runs a count query.
func (c *crash) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, c.pool.QueryRow(t.Context(), query, args...).Scan(&n))
	return n
}

// jobIDs lists the ids of the River jobs (all of the test's database) matching where.
func (c *crash) jobIDs(t *testing.T, where string, args ...any) []int64 {
	t.Helper()
	rows, err := c.pool.Query(t.Context(), "SELECT id FROM river_job WHERE "+where+" ORDER BY id", args...)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return ids
}

// pay has every invoice paid in full at the provider and tells Tessera, as BTCPay's webhook
// would, with one payin.settle job each.
func (c *crash) pay(t *testing.T) {
	t.Helper()
	rows, err := c.pool.Query(t.Context(), `SELECT provider_invoice_id, amount_sats FROM payin_invoices WHERE tenant_id = $1`, c.tenant.ID)
	require.NoError(t, err)
	type invoice struct {
		ID     string
		Amount int64
	}
	invoices, err := pgx.CollectRows(rows, pgx.RowToStructByPos[invoice])
	require.NoError(t, err)
	inserter, err := river.NewClient(riverpgxv5.New(c.pool), &river.Config{})
	require.NoError(t, err)
	params := make([]river.InsertManyParams, len(invoices))
	for i, inv := range invoices {
		require.NoError(t, c.provider.fake.Settle(inv.ID, inv.Amount))
		params[i] = river.InsertManyParams{Args: jobargs.PayInSettle{Provider: btcpay.Name, InvoiceID: inv.ID}}
	}
	_, err = inserter.InsertMany(t.Context(), params)
	require.NoError(t, err)
}

// requireExactlyOnce asserts that the renewal run happened exactly once: one cycle per
// subscription, one PAID PayIn per cycle, one invoice per PayIn in the database and at the
// provider (by order id, the PayIn's id), and payouts summing to each PayIn's cost.
func (c *crash) requireExactlyOnce(t *testing.T) {
	t.Helper()
	require.Equal(t, crashSubscriptions, c.count(t, `SELECT count(*) FROM subscriptions WHERE tenant_id = $1`, c.tenant.ID))
	require.Zero(t, c.count(t, `
		SELECT count(*) FROM subscriptions s
		WHERE s.tenant_id = $1
		  AND (SELECT count(*) FROM subscription_cycles c WHERE c.tenant_id = s.tenant_id AND c.subscription_id = s.id) <> 1`, c.tenant.ID),
		"a subscription without exactly one cycle")
	require.Equal(t, crashSubscriptions, c.count(t, `SELECT count(*) FROM payins WHERE tenant_id = $1`, c.tenant.ID), "PayIns")
	require.Equal(t, crashSubscriptions, c.count(t, `
		SELECT count(DISTINCT c.payin_id) FROM subscription_cycles c
		JOIN payins p ON p.tenant_id = c.tenant_id AND p.id = c.payin_id AND p.state = 'PAID'
		WHERE c.tenant_id = $1`, c.tenant.ID), "one PAID PayIn per cycle")
	require.Equal(t, crashSubscriptions, c.count(t, `SELECT count(*) FROM payin_invoices WHERE tenant_id = $1`, c.tenant.ID), "one invoice per PayIn")
	require.Zero(t, c.count(t, `
		SELECT count(*) FROM payins p
		WHERE p.tenant_id = $1
		  AND p.cost_sats <> (SELECT coalesce(sum(o.amount), 0) FROM payouts o WHERE o.tenant_id = p.tenant_id AND o.payin_id = p.id)`, c.tenant.ID),
		"a PayIn whose payouts do not sum to its cost")

	rows, err := c.pool.Query(t.Context(), `SELECT id FROM payins WHERE tenant_id = $1`, c.tenant.ID)
	require.NoError(t, err)
	payins, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	perOrder := map[string]int{}
	for _, inv := range c.provider.fake.Invoices() {
		perOrder[inv.OrderID]++
	}
	require.Len(t, perOrder, crashSubscriptions, "invoices at the provider, by order id: %v", perOrder)
	for _, id := range payins {
		require.Equal(t, 1, perOrder[id.String()], "invoices at the provider for PayIn %s", id)
	}
}

// process is a running `tessera worker`.
type process struct {
	cmd    *exec.Cmd
	output *factory.Output
	exited chan struct{}
}

// start starts a worker process on the bundle's database, connected as application name.
func (c *crash) start(t *testing.T, name string) *process {
	t.Helper()
	u, err := url.Parse(c.databaseURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return startProcess(t, append(slices.Clip(c.env), "DATABASE_URL="+u.String()))
}

// startProcess starts the tessera command line that env's childEnv holds, re-executing the
// test binary (TestMain), with env as its whole environment. Its output is logged when the
// test fails; the test's cleanup kills it if it still runs.
func startProcess(t *testing.T, env []string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(os.Args[0], "-test.run=^$"), output: &factory.Output{}, exited: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	require.NoError(t, p.cmd.Start())
	go func() {
		defer close(p.exited)
		p.cmd.Wait() //nolint:errcheck // a killed worker's exit status is the point
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill() //nolint:errcheck // it may have exited
		<-p.exited
		if t.Failed() {
			t.Logf("worker %d output:\n%s", p.cmd.Process.Pid, p.output.String())
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.exited
}

// stop asks the worker to shut down (SIGTERM) and waits until it has.
func (p *process) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
		require.True(t, p.cmd.ProcessState.Success(), "worker exited with %s:\n%s", p.cmd.ProcessState, p.output.String())
	case <-time.After(waitFor):
		require.FailNow(t, "the worker did not stop on SIGTERM")
	}
}

// The held provider's store and keys.
const heldStore, heldAPIKey, heldWebhookSecret = "store-crash", "api-key-crash", "webhook-secret-crash"

// heldProvider is the fake BTCPay server on loopback, in front of which the answers to
// invoice creations can be held back: the invoice exists at the provider, but the worker
// that asked never hears of it while it is held.
type heldProvider struct {
	fake *fakebtcpay.Server
	url  string

	mu      sync.Mutex
	passing int // creations still answered before holding starts; -1: never hold
	held    int // creations being held
}

func newHeldProvider(t *testing.T) *heldProvider {
	t.Helper()
	fake, err := fakebtcpay.New(fakebtcpay.Config{StoreID: heldStore, APIKey: heldAPIKey, WebhookSecret: heldWebhookSecret})
	require.NoError(t, err)
	h := &heldProvider{fake: fake, passing: -1}
	srv := httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// hold answers the next pass invoice creations and holds the answers of those after them;
// hold(-1) stops holding.
func (h *heldProvider) hold(pass int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.passing = pass
}

// holding is how many invoice creations are being held.
func (h *heldProvider) holding() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

// serve passes every request to the fake; the answer to an invoice creation past the
// passing ones is held until the client goes away.
func (h *heldProvider) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/invoices") {
		h.fake.Handler().ServeHTTP(w, r)
		return
	}
	h.mu.Lock()
	hold := h.passing == 0
	if h.passing > 0 {
		h.passing--
	}
	h.mu.Unlock()
	if !hold {
		h.fake.Handler().ServeHTTP(w, r)
		return
	}
	h.fake.Handler().ServeHTTP(httptest.NewRecorder(), r) // the invoice is created ...
	h.mu.Lock()
	h.held++
	h.mu.Unlock()
	<-r.Context().Done() // ... and its answer never sent
	h.mu.Lock()
	h.held--
	h.mu.Unlock()
}
