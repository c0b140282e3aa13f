// Package liverenewals generates a live tenant's subscription book and measures its renewals
// per second on Tessera's workers: bench/renewals measures with it, and bench/sandbox compares
// a sandbox's clock advance with it in the same run. It runs Tessera's workers, so it imports
// jobs, which no package under an internal/ directory may (depguard): hence not bench/internal.
package liverenewals

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/fakebtcpay"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/jobs"
	"github.com/tessera/tessera/sql"
)

// Generate makes one live tenant with a monthly policy (7 grace days) and n customers, each with
// a licence and a subscription started over the past year: renewals are due evenly over
// the next 30 days, except 0.1% due now (in the past hour); 2% are past_due (their cycle
// started 0 to 14 days ago), 0.05% of those stuck at the failure cap; 3% are cancelled and
// 2% lapsed.
func Generate(ctx context.Context, pool *pgxpool.Pool, now time.Time, n int) error {
	box, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		return err
	}
	actor := core.Actor{Type: core.ActorCLI, ID: "bench"}
	var tenant sql.Tenant
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) (err error) {
		tenant, err = core.TenantCreate(ctx, tx, core.Step{Now: now, Actor: actor, Box: box}, core.TenantCreateParams{Slug: "bench", Name: "Bench"})
		return err
	})
	if err != nil {
		return err
	}
	product, err := sql.New().ProductCreate(ctx, pool, sql.ProductCreateParams{TenantID: tenant.ID, ID: core.NewID(), Slug: "bench", Name: "Bench", Now: now})
	if err != nil {
		return err
	}
	policy, err := sql.New().PolicyCreate(ctx, pool, sql.PolicyCreateParams{
		TenantID: tenant.ID, ID: core.NewID(), ProductID: product.ID, Slug: "monthly", Name: "Monthly",
		ListedCurrency: sql.CurrencyUSD, ListedValue: 2500, IsRecurring: true, PeriodDays: ptr(int32(30)),
		GracePeriodDays: 7, Entitlements: []string{}, Now: now,
	})
	if err != nil {
		return err
	}
	tid, pid := tenant.ID, policy.ID
	steps := []struct {
		sql  string
		args []any
	}{
		{`CREATE TEMP TABLE gen AS
		  SELECT g, gen_random_uuid() AS customer_id, gen_random_uuid() AS license_id, gen_random_uuid() AS id,
		         random() AS r, random() AS r2
		  FROM generate_series(1, $1) g`, []any{n}},
		{`INSERT INTO customers (tenant_id, id, email, invite_code, created_at, updated_at)
		  SELECT $1, customer_id, 'c' || g || '@bench.invalid', 'INV' || g, $2, $2 FROM gen`, []any{tid, now}},
		{`INSERT INTO licenses (tenant_id, id, policy_id, customer_id, key, issued_at, expires_at, status_changed_at, updated_at)
		  SELECT $1, license_id, $3, customer_id, 'bench-' || g, $2::timestamptz - make_interval(0, 0, 0, 365),
		         $2::timestamptz + make_interval(0, 0, 0, 37), $2, $2 FROM gen`, []any{tid, now, pid}},
		// Status by r: [0, .03) cancelled, [.03, .05) lapsed, [.05, .07) past_due, else active.
		// The period ends (and the renewal is due) at now + r2 * 30 days for active ones, in
		// the past hour for 0.1% of them; past_due ones' cycle started r2 * 14 days ago.
		{`INSERT INTO subscriptions (tenant_id, id, customer_id, license_id, policy_id, status, price_currency, price_value,
		                             period_days, current_period_start, current_period_end, next_renewal_at,
		                             consecutive_failures, created_at, cancelled_at, status_changed_at, updated_at)
		  SELECT $1, id, customer_id, license_id, $3, x.status::subscription_status, 'USD', 2500, 30,
		         x.period_end - make_interval(0, 0, 0, 30), x.period_end,
		         CASE WHEN x.status = 'cancelled' THEN NULL
		              WHEN x.status = 'past_due' THEN x.period_end + make_interval(0, 0, 0, 30)
		              ELSE x.period_end END,
		         CASE WHEN x.status = 'past_due' AND r2 < 0.025 THEN 5 ELSE 0 END,
		         $2::timestamptz - make_interval(0, 0, 0, 365),
		         CASE WHEN x.status = 'cancelled' THEN $2::timestamptz END, $2, $2
		  FROM (SELECT gen.*,
		               CASE WHEN r < 0.03 THEN 'cancelled' WHEN r < 0.05 THEN 'lapsed' WHEN r < 0.07 THEN 'past_due' ELSE 'active' END AS status,
		               CASE WHEN r < 0.07 AND r >= 0.05 THEN $2::timestamptz - make_interval(secs => r2 * 14 * 86400)
		                    WHEN r >= 0.999 THEN $2::timestamptz - make_interval(secs => r2 * 3600)
		                    ELSE $2::timestamptz + make_interval(secs => 1 + r2 * 30 * 86400) END AS period_end
		        FROM gen) x`, []any{tid, now, pid}},
		{`VACUUM ANALYZE subscriptions`, nil},
		{`ANALYZE`, nil},
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	for i, step := range steps {
		if _, err := conn.Exec(ctx, step.sql, step.args...); err != nil {
			return fmt.Errorf("generate step %d: %w", i, err)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// The settings Throughput runs Tessera's workers and pool with: TESSERA_FETCH_COOLDOWN's and
// TESSERA_DB_MAX_CONNS's defaults (cmd/tessera/config.go).
const (
	FetchCooldown = 5 * time.Millisecond
	MaxConns      = 20
)

// Pool configures a pool as `tessera serve` sizes its own: pass it to benchdb.Create.
func Pool(config *pgxpool.Config) { config.MaxConns = MaxConns }

// Result is what Throughput measured.
type Result struct {
	// Renewals is how many renewals were started and invoiced.
	Renewals int
	// Workers is the River workers on the default queue.
	Workers int
	// Elapsed is from the workers' start to the last invoice.
	Elapsed time.Duration
	// ProviderRequests is how many requests the fake BTCPay answered.
	ProviderRequests int
}

// PerSecond is the renewals per second.
func (r Result) PerSecond() float64 { return float64(r.Renewals) / r.Elapsed.Seconds() }

// Throughput makes every generated subscription due, then runs Tessera's workers (a real
// River client, workers goroutines) against a fake BTCPay on loopback: one renewal sweep
// enqueues the renewals (chaining sweeps while batches are full), each renewal creates its
// PayIn, and each PayIn's invoice is created at the fake BTCPay. It reports renewals per
// second until every subscription's cycle is open and its invoice created. The statements it
// runs to set up and to wait carry a "-- bench" comment, which benchdb.Statements leaves out.
func Throughput(ctx context.Context, pool *pgxpool.Pool, now time.Time, workers int) (Result, error) {
	_, err := pool.Exec(ctx, `UPDATE subscriptions SET status = 'active', cancelled_at = NULL, consecutive_failures = 0, -- bench
		current_period_start = $1::timestamptz - make_interval(0, 0, 0, 30, 0, 0, 1), current_period_end = $1::timestamptz - make_interval(0, 0, 0, 0, 0, 0, 1),
		next_renewal_at = $1::timestamptz - make_interval(0, 0, 0, 0, 0, 0, 1)`, now)
	if err != nil {
		return Result{}, err
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM subscriptions -- bench").Scan(&n); err != nil {
		return Result{}, err
	}
	fake, err := fakebtcpay.New(fakebtcpay.Config{StoreID: "bench", APIKey: "bench", WebhookSecret: "bench", Rates: map[string]string{"USD": "50000.00"}})
	if err != nil {
		return Result{}, err
	}
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	client, err := btcpay.New(btcpay.Config{BaseURL: srv.URL, StoreID: "bench", APIKey: "bench", WebhookSecret: "bench"})
	if err != nil {
		return Result{}, err
	}
	rates, err := payment.NewFixed(clock.NewManual(now), map[string]int64{"USD": 5_000_000})
	if err != nil {
		return Result{}, err
	}
	box, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		return Result{}, err
	}
	log := slog.New(slog.DiscardHandler)
	ws, err := jobs.Workers(jobs.Config{DB: pool, Clock: clock.NewManual(now), Log: log, Box: box, Payments: client, Rates: rates})
	if err != nil {
		return Result{}, err
	}
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger: log, Workers: ws, Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
		FetchCooldown: FetchCooldown, FetchPollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		return Result{}, err
	}
	start := clock.System{}.Now()
	if err := rc.Start(ctx); err != nil {
		return Result{}, err
	}
	defer rc.Stop(context.WithoutCancel(ctx)) //nolint:errcheck // the measurement is done
	if _, err := rc.Insert(ctx, jobargs.SubscriptionRenewSweep{}, nil); err != nil {
		return Result{}, err
	}
	for {
		var invoiced int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM payins WHERE type = 'subscription_renewal' AND state = 'PENDING' -- bench").Scan(&invoiced); err != nil {
			return Result{}, err
		}
		if invoiced == n {
			break
		}
		if time.Since(start) > 30*time.Minute {
			return Result{}, fmt.Errorf("only %d of %d renewals invoiced after 30 minutes", invoiced, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return Result{Renewals: n, Workers: workers, Elapsed: time.Since(start), ProviderRequests: fake.Requests()}, nil
}
