// Command renewals generates a large subscription book and measures the renewal sweeps'
// selections: SubscriptionListDueAllTenants (the subscription.renew_sweep's pick of due
// subscriptions) and SubscriptionLapseDueAllTenants (the lapse sweep). It prints Markdown
// with the median of several runs and EXPLAIN (ANALYZE, BUFFERS) of each; every run is in a
// transaction rolled back, so the data does not change between runs.
//
//	DATABASE_URL=... go run ./bench/renewals -subscriptions 1000000
//	DATABASE_URL=... go run ./bench/renewals -subscriptions 10000 -throughput-workers 20
//
// With -throughput-workers it measures renewals per second instead (throughput.go).
//
// It creates the database named by -db on DATABASE_URL's server (dropping it first), migrates
// it with internal/migrate.Up, and drops it at the end unless -keep is given.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/bench/internal/benchsql"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/migrate"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/sql"
)

func main() {
	subscriptions := flag.Int("subscriptions", 1_000_000, "subscriptions (each with its customer and licence)")
	runs := flag.Int("runs", 7, "timed runs of each query")
	dbName := flag.String("db", "tessera_bench_renewals", "database to create on DATABASE_URL's server")
	keep := flag.Bool("keep", false, "keep the database at the end")
	workers := flag.Int("throughput-workers", 0, "instead of the queries: make every subscription due and measure renewals per second with this many River workers against a fake BTCPay")
	flag.Parse()
	if err := run(context.Background(), *subscriptions, *runs, *dbName, *keep, *workers); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, subscriptions, runs int, dbName string, keep bool, workers int) (err error) {
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		return fmt.Errorf("DATABASE_URL is not set")
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer func() { _ = admin.Close(ctx) }() // an admin connection: its statements' errors are what count
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return err
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	u.Path = "/" + dbName
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		return err
	}
	defer func() {
		pool.Close()
		if !keep {
			if _, dropErr := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)"); dropErr != nil && err == nil {
				err = dropErr
			}
		}
	}()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	if err := migrate.Up(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	start := clock.System{}.Now()
	if err := generate(ctx, pool, now, subscriptions); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "generated %d subscriptions in %s\n", subscriptions, time.Since(start).Round(time.Second))
	if workers > 0 {
		return throughput(ctx, pool, now, workers)
	}
	return measure(ctx, pool, now, runs)
}

// generate makes one tenant with a monthly policy (7 grace days) and n customers, each with
// a licence and a subscription started over the past year: renewals are due evenly over
// the next 30 days, except 0.1% due now (in the past hour); 2% are past_due (their cycle
// started 0 to 14 days ago), 0.05% of those stuck at the failure cap; 3% are cancelled and
// 2% lapsed.
func generate(ctx context.Context, pool *pgxpool.Pool, now time.Time, n int) error {
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

func measure(ctx context.Context, pool *pgxpool.Pool, now time.Time, runs int) error {
	var total, due int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status IN ('active', 'past_due') AND consecutive_failures < 5 AND next_renewal_at <= $1)
		FROM subscriptions`, now).Scan(&total, &due); err != nil {
		return err
	}
	fmt.Printf("Data: %d subscriptions, %d due at now.\n\n", total, due)
	for _, q := range []struct{ name, constant string }{
		{"SubscriptionListDueAllTenants (batch 500)", "subscriptionListDueAllTenants"},
		{"SubscriptionLapseDueAllTenants (batch 1000)", "subscriptionLapseDueAllTenants"},
	} {
		text, err := benchsql.QueryText("sql/renewals.sql.go", q.constant)
		if err != nil {
			return err
		}
		batch := 500
		if q.constant == "subscriptionLapseDueAllTenants" {
			batch = 1000
		}
		var times []time.Duration
		var rowsSeen int
		for i := range runs + 1 {
			start := clock.System{}.Now()
			n, err := inRolledBackTx(ctx, pool, func(tx pgx.Tx) (int, error) {
				rows, err := tx.Query(ctx, text, now, batch)
				if err != nil {
					return 0, err
				}
				count := 0
				for rows.Next() {
					count++
				}
				return count, rows.Err()
			})
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			if i > 0 { // the first run warms the cache
				times = append(times, time.Since(start))
			}
			rowsSeen = n
		}
		slices.Sort(times)
		fmt.Printf("### %s\n\nmedian %s over %d runs (min %s, max %s), %d rows, each run in a transaction rolled back\n\n```\n", q.name,
			times[len(times)/2].Round(time.Microsecond), runs, times[0].Round(time.Microsecond), times[len(times)-1].Round(time.Microsecond), rowsSeen)
		_, err = inRolledBackTx(ctx, pool, func(tx pgx.Tx) (int, error) {
			rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+text, now, batch)
			if err != nil {
				return 0, err
			}
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					return 0, err
				}
				fmt.Println(line)
			}
			return 0, rows.Err()
		})
		if err != nil {
			return err
		}
		fmt.Print("```\n\n")
	}
	return nil
}

// inRolledBackTx runs fn in a transaction that is always rolled back.
func inRolledBackTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) (int, error)) (int, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // rolled back on purpose; nothing to keep
	return fn(tx)
}
