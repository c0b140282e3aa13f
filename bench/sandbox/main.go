// Command sandbox measures a year's advance of a sandbox tenant's clock: one sandbox tenant
// with monthly subscriptions whose first renewals fall due over the first month, half of
// them auto_pay with credits enough for the year (renewed and paid at once, every 30 days),
// the others unpaid (renewed once, invoiced at the sandbox checkout; the invoice expires,
// they lapse and their licence expires). It runs the advance as the clock.advance job does
// (core.ClockAdvanceStart, then core.ClockAdvanceRun of -batch things per transaction until
// it has succeeded) and prints Markdown: the wall time, renewals, lapses and PayIns per
// second, the advance's counts, and EXPLAIN (ANALYZE, BUFFERS) of the queries an instant
// runs, taken half-way (outside the timed runs, each in a transaction rolled back). In the
// same run it measures a live tenant's renewals per second on Tessera's workers against a
// fake BTCPay, as bench/renewals -throughput-workers does (bench/liverenewals). The advance's
// wall time and rates, and the live renewals per second, also go to make bench's table
// (bench/internal/report; the rates as fractions of pgbench's TPC-B).
//
//	DATABASE_URL=... go run ./bench/sandbox -subscriptions 10000
//
// It creates the databases named by -db and -live-db on DATABASE_URL's server (dropping them
// first), migrates them with internal/migrate.Up, and drops them at the end unless -keep is
// given. Run it from the repository's root (the plans read sql/clock.sql.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/tessera/tessera/bench/internal/benchdb"
	"github.com/tessera/tessera/bench/internal/report"
	"github.com/tessera/tessera/bench/liverenewals"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/sql"
)

// options are the command's flags.
type options struct {
	subscriptions     int
	batch             int
	dbName            string
	liveSubscriptions int
	liveWorkers       int
	liveDBName        string
	keep              bool
}

func main() {
	var o options
	flag.IntVar(&o.subscriptions, "subscriptions", 10_000, "the sandbox tenant's monthly subscriptions (half auto_pay with credits, half unpaid)")
	flag.IntVar(&o.batch, "batch", 1000, "things one run of the advance does (the clock.advance job's default batch)")
	flag.StringVar(&o.dbName, "db", "tessera_bench_sandbox", "database of the sandbox tenant, created on DATABASE_URL's server")
	flag.IntVar(&o.liveSubscriptions, "live-subscriptions", 5000, "the live tenant's subscriptions, all due, renewed by River workers (0: no live measurement)")
	flag.IntVar(&o.liveWorkers, "live-workers", 20, "River workers of the live measurement")
	flag.StringVar(&o.liveDBName, "live-db", "tessera_bench_sandbox_live", "database of the live measurement, created on DATABASE_URL's server")
	flag.BoolVar(&o.keep, "keep", false, "keep the databases at the end")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		log.Fatal(err)
	}
}

// start is the sandbox clock's instant at the start, and the live measurement's now.
var start = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// usdPerBTC is the fixed rate both measurements quote at, in cents: $25 is 50,000 sats.
const usdPerBTC = 5_000_000

func run(ctx context.Context, o options) error {
	if err := sandbox(ctx, o); err != nil {
		return err
	}
	if o.liveSubscriptions == 0 {
		return nil
	}
	return live(ctx, o)
}

// sandbox generates the sandbox tenant's book, advances its clock by a year and prints what
// it measured.
func sandbox(ctx context.Context, o options) (err error) {
	var times benchdb.QueryTimes
	db, err := benchdb.Create(ctx, o.dbName, times.Trace)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close(ctx, o.keep)) }()
	began := clock.System{}.Now()
	b, err := generate(ctx, db.Pool, o.subscriptions)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "generated %d sandbox subscriptions in %s\n", o.subscriptions, time.Since(began).Round(time.Second))
	times.Reset()
	m, err := b.advance(ctx, o.batch, start.AddDate(1, 0, 0))
	if err != nil {
		return err
	}
	m.queries = times.Top(12)
	if err := m.print(ctx, db.Pool, b.tenant); err != nil {
		return err
	}
	return m.report(o.subscriptions)
}

// live measures the live tenant's renewals per second and prints them.
func live(ctx context.Context, o options) (err error) {
	db, err := benchdb.Create(ctx, o.liveDBName)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close(ctx, o.keep)) }()
	if err := liverenewals.Generate(ctx, db.Pool, start, o.liveSubscriptions); err != nil {
		return err
	}
	r, err := liverenewals.Throughput(ctx, db.Pool, start, o.liveWorkers)
	if err != nil {
		return err
	}
	fmt.Printf("### Live tenant, same run\n\n%d renewals (sweep, subscription.renew, payin.create_invoice at the fake BTCPay) with %d River workers in %s: **%.0f renewals/s**\n",
		r.Renewals, r.Workers, r.Elapsed.Round(time.Millisecond), r.PerSecond())
	return report.Add(report.Result{Name: fmt.Sprintf("sandbox bench, live tenant: renewals completed (%d, %d workers)", r.Renewals, r.Workers),
		Value: r.PerSecond(), Unit: "/s", Limit: report.TPCB})
}

// book is the generated sandbox tenant and what its advance needs.
type book struct {
	pool *pgxpool.Pool
	// db is pool with Tessera's errors (core.DB), as the jobs and the API see it.
	db     pg.DB
	tenant uuid.UUID
	st     core.Step
	quotes map[sql.Currency]core.RenewalQuote
}

// generate makes one sandbox tenant whose clock stands at start, a monthly USD 25 policy
// (30 days, 7 grace days) and n customers, each with an active licence and subscription
// whose period ends (and first renewal falls due) evenly over the first 30 days; the
// customers of even rows have auto_pay and credits for 14 renewals (the year's 12 or 13 at
// 50,000 sats, and one spare), granted through core.CreditGrant.
func generate(ctx context.Context, pool *pgxpool.Pool, n int) (book, error) {
	box, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		return book{}, err
	}
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return book{}, err
	}
	rates, err := payment.NewFixed(clock.NewManual(start), map[string]int64{"USD": usdPerBTC})
	if err != nil {
		return book{}, err
	}
	b := book{pool: pool, db: core.DB(pool), st: core.Step{Now: start, Actor: core.Actor{Type: core.ActorCLI, ID: "bench"}, Box: box, Jobs: inserter},
		quotes: core.RenewalQuotes(ctx, rates)}
	var tenant sql.Tenant
	err = pg.InTx(ctx, b.db, func(tx pgx.Tx) (err error) {
		tenant, err = core.TenantCreate(ctx, tx, b.st, core.TenantCreateParams{Slug: "sandbox", Name: "Sandbox", SandboxClock: &start})
		return err
	})
	if err != nil {
		return book{}, err
	}
	b.tenant = tenant.ID
	product, err := sql.New().ProductCreate(ctx, pool, sql.ProductCreateParams{TenantID: tenant.ID, ID: core.NewID(), Slug: "bench", Name: "Bench", Now: start})
	if err != nil {
		return book{}, err
	}
	period := int32(30)
	policy, err := sql.New().PolicyCreate(ctx, pool, sql.PolicyCreateParams{
		TenantID: tenant.ID, ID: core.NewID(), ProductID: product.ID, Slug: "monthly", Name: "Monthly",
		ListedCurrency: sql.CurrencyUSD, ListedValue: 2500, IsRecurring: true, PeriodDays: &period,
		GracePeriodDays: 7, Entitlements: []string{}, Now: start,
	})
	if err != nil {
		return book{}, err
	}
	tid, pid := tenant.ID, policy.ID
	steps := []struct {
		sql  string
		args []any
	}{
		{`CREATE TEMP TABLE gen AS
		  SELECT g, gen_random_uuid() AS customer_id, gen_random_uuid() AS license_id, gen_random_uuid() AS id,
		         g % 2 = 0 AS auto_pay, $2::timestamptz + make_interval(secs => 1 + random() * 30 * 86400) AS period_end
		  FROM generate_series(1, $1) g`, []any{n, start}},
		{`INSERT INTO customers (tenant_id, id, email, invite_code, auto_pay, created_at, updated_at)
		  SELECT $1, customer_id, 'c' || g || '@bench.invalid', 'INV' || g, auto_pay, $2, $2 FROM gen`, []any{tid, start}},
		{`INSERT INTO licenses (tenant_id, id, policy_id, customer_id, key, issued_at, expires_at, status_changed_at, updated_at)
		  SELECT $1, license_id, $3, customer_id, 'bench-' || g, period_end - make_interval(0, 0, 0, 30),
		         tessera_license_expiry(period_end, 7), $2, $2 FROM gen`, []any{tid, start, pid}},
		{`INSERT INTO subscriptions (tenant_id, id, customer_id, license_id, policy_id, status, price_currency, price_value,
		                             period_days, current_period_start, current_period_end, next_renewal_at,
		                             consecutive_failures, created_at, status_changed_at, updated_at)
		  SELECT $1, id, customer_id, license_id, $3, 'active', 'USD', 2500, 30,
		         period_end - make_interval(0, 0, 0, 30), period_end, period_end, 0, $2, $2, $2
		  FROM gen`, []any{tid, start, pid}},
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return book{}, err
	}
	defer conn.Release()
	for i, step := range steps {
		if _, err := conn.Exec(ctx, step.sql, step.args...); err != nil {
			return book{}, fmt.Errorf("generate step %d: %w", i, err)
		}
	}
	if err := b.grantCredits(ctx, conn); err != nil {
		return book{}, err
	}
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		return book{}, err
	}
	return b, nil
}

// creditsPerCustomer is 14 renewals at $25 and usdPerBTC, in credits (one sat each).
const creditsPerCustomer = 14 * 2500 * 100_000_000 / usdPerBTC

// grantCredits gives every auto_pay customer creditsPerCustomer, 500 grants a transaction.
func (b book) grantCredits(ctx context.Context, conn *pgxpool.Conn) error {
	rows, err := conn.Query(ctx, "SELECT customer_id FROM gen WHERE auto_pay ORDER BY g")
	if err != nil {
		return err
	}
	customers, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return err
	}
	for from := 0; from < len(customers); from += 500 {
		err := pg.InTx(ctx, b.db, func(tx pgx.Tx) error {
			for _, customer := range customers[from:min(from+500, len(customers))] {
				if _, _, err := core.CreditGrant(ctx, tx, b.st, core.CreditGrantParams{TenantID: b.tenant, CustomerID: customer,
					Amount: creditsPerCustomer, Reason: "bench: a year of renewals"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("grant credits: %w", err)
		}
	}
	return nil
}
